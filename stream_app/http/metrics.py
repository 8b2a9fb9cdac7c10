"""Prometheus metrics of one worker, served at ``/metrics`` on its HTTP port.

Each worker has its own registry and serves only its own numbers. Labels
carry no customer ids (topic, partition, type, reason, rule, severity and
status only), so their number stays small however many customers there are.
Names follow Prometheus conventions: a ``churnwatch_`` prefix, base units in
the name, ``_total`` on counters (added by the client library).

Also served: the process's own numbers (``process_*``: CPU, memory, open
files), the Python runtime (``python_info``) and the build
(``churnwatch_build_info``: which version runs where). Counters and
histograms carry no ``_created`` series: they double the series and no
dashboard or rule of ours reads them.
"""

from __future__ import annotations

import platform
from datetime import datetime
from typing import Any

from prometheus_client import (
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)

from churnwatch.rules.config import OutcomesConfig
from churnwatch.rules.outcomes import Verdict
from churnwatch.schemas.alert import Alert, RuleName, Severity
from churnwatch.version import product_version, version_of

# Event age spans seconds (live) to months (a backfill); processing spans microseconds to a second.
AGE_BUCKETS = (1, 5, 30, 60, 300, 900, 3600, 6 * 3600, 86_400, 7 * 86_400, 30 * 86_400, float("inf"))
PROCESSING_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
                      float("inf"))


disable_created_metrics()


class Metrics:
    def __init__(self) -> None:
        registry = self.registry = CollectorRegistry(auto_describe=True)
        registry.register(PROCESS_COLLECTOR)
        registry.register(PLATFORM_COLLECTOR)
        self.build = Gauge("churnwatch_build_info", "Always 1; the labels say which churnwatch runs on what",
                           ["version", "python", "faust", "river"], registry=registry)
        self.build.labels(product_version(), platform.python_version(), version_of("faust-streaming"),
                          version_of("river")).set(1)
        self.events = Counter("churnwatch_events_consumed", "Valid events processed, by type and outcome "
                              "(applied, duplicate, too_old)", ["type", "outcome"], registry=registry)
        self.rejected = Counter("churnwatch_events_rejected", "Messages rejected, by reason",
                                ["reason"], registry=registry)
        self.dead_letters = Counter("churnwatch_dead_letters_written", "Records written to the dead-letter topic",
                                    registry=registry)
        self.alerts = Counter("churnwatch_alerts_published", "Alerts published, by rule, severity and status",
                              ["rule", "severity", "status"], registry=registry)
        self.processing = Histogram("churnwatch_processing_seconds", "Time to process one message",
                                    ["kind"], buckets=PROCESSING_BUCKETS, registry=registry)
        self.event_age = Histogram("churnwatch_event_age_seconds", "Wall time at processing minus occurred_at",
                                   buckets=AGE_BUCKETS, registry=registry)
        self.customers = Gauge("churnwatch_customers_tracked", "Customers in this worker's active partitions",
                               registry=registry)
        self.at_risk = Gauge("churnwatch_customers_open_episodes", "Customers with an open episode, by their "
                             "highest open severity", ["severity"], registry=registry)
        self.sweep_duration = Histogram("churnwatch_sweep_duration_seconds", "Time one sweep took",
                                        registry=registry)
        self.swept = Counter("churnwatch_sweep_customers", "Customers a sweep sent for evaluation",
                             registry=registry)
        self.sweep_time = Gauge("churnwatch_sweep_time_seconds", "The time the last sweep judged at (the event "
                                "clock's watermark, or the wall clock); NaN until the first, and it stands still "
                                "while the clock waits for partitions to catch up", registry=registry)
        self.sweep_time.set(float("nan"))
        self.due = Gauge("churnwatch_sweep_due_customers", "Customers this worker's sweep will judge when their "
                         "time comes (its due index)", registry=registry)
        self.lag = Gauge("churnwatch_consumer_lag_messages", "Records not yet processed, by input topic and "
                         "partition (only the partitions this worker reads now)", ["topic", "partition"],
                         registry=registry)
        self.late = Counter("churnwatch_events_late", "Events that reached the core after a later event of their "
                            "partition (their publisher was late by more than the merge's wait, or out of order), "
                            "by topic", ["topic"], registry=registry)
        self.read_again = Counter("churnwatch_input_read_again", "Times an input partition was read again from a "
                                  "message the Kafka client handed over that never reached the worker (nothing after "
                                  "it was processed first), by topic", ["topic"], registry=registry)
        self.merging = Gauge("churnwatch_merge_waiting_messages", "Input messages read and waiting for their turn "
                             "in event-time order", registry=registry)
        self.model_auc = Gauge("churnwatch_model_roc_auc", "Online ROC AUC on delayed labels (NaN until both "
                               "classes were scored)", registry=registry)
        self.model_log_loss = Gauge("churnwatch_model_log_loss",
                                    "Online log loss on delayed labels (NaN until the first)", registry=registry)
        self.learning_failures = Counter("churnwatch_model_learning_failures", "Labels the model failed to "
                                         "learn from (logged; their messages and alerts went through)",
                                         registry=registry)
        self.model_gate = Gauge("churnwatch_model_gate_open", "1 while model_risk may alert: enough labels "
                                "and a lower bound of the recent online ROC AUC above the floor", registry=registry)
        self.model_recent_auc = Gauge("churnwatch_model_recent_roc_auc", "ROC AUC of the current model on "
                                      "its recent delayed labels, scored before learning them",
                                      registry=registry)
        self.model_recent_auc_bound = Gauge("churnwatch_model_recent_roc_auc_bound", "Lower bound of that ROC AUC "
                                            "at the rules file's gate_confidence: what the gate judges",
                                            registry=registry)
        self.model_labels = Gauge("churnwatch_model_labels", "Labels the model has learned from, by label",
                                  ["label"], registry=registry)
        self.model_version = Gauge("churnwatch_model_learned_until_seconds", "The start of the event-time week the "
                                   "model has learned everything before (its version); stands still while a "
                                   "partition's clock holds it back", registry=registry)
        self.model_version.set(float("nan"))
        self.model_waiting = Gauge("churnwatch_model_waiting_records", "Labels and assessments taken, waiting "
                                   "for their week's version", registry=registry)
        # Alert outcomes (churnwatch.scoreboard): the whole group's, as this worker has read them from the
        # labels topic; every worker exports the same numbers (take the max over workers, not the sum).
        self.outcomes = Gauge("churnwatch_rule_outcomes", "Alerts judged, by rule and verdict (hit, miss, "
                              "after_the_fact), the whole group's", ["rule", "verdict"], registry=registry)
        self.churners = Gauge("churnwatch_churners", "Cancellations counted as churn, the whole group's",
                              registry=registry)
        self.churners_warned = Gauge("churnwatch_rule_churners_warned", "Churners a rule warned within the "
                                     "horizon before they cancelled", ["rule"], registry=registry)
        self.precision = Gauge("churnwatch_rule_precision", "Hits / alerts judged (NaN until one is judged)",
                               ["rule"], registry=registry)
        self.recall = Gauge("churnwatch_rule_recall", "Churners the rule warned / churners (NaN until a churner)",
                            ["rule"], registry=registry)
        self.lead = Gauge("churnwatch_rule_median_lead_days", "Median days from a churner's earliest warning "
                          "by the rule to the cancellation (NaN until one)", ["rule"], registry=registry)
        self.precision_floor = Gauge("churnwatch_rule_precision_floor", "The rules file's outcomes."
                                     "precision_floor (ChurnwatchRulePrecisionLow fires below it)",
                                     registry=registry)
        self.min_judged = Gauge("churnwatch_rule_min_judged", "The rules file's outcomes.min_judged: alerts "
                                "judged before a rule's precision is alerted on", registry=registry)
        self._severity_of: dict[str, Severity] = {}
        for severity in Severity:
            self.at_risk.labels(severity.value).set(0)
        for unknown in (self.model_auc, self.model_log_loss, self.model_recent_auc, self.model_recent_auc_bound):
            unknown.set(float("nan"))  # not known before the first labels, which is not 0

    def scoreboard(self, report: dict[str, Any], config: OutcomesConfig) -> None:
        """Set the outcome gauges from a scoreboard's report (None reads NaN: not known yet, not zero)."""
        nan = float("nan")
        self.precision_floor.set(config.precision_floor)
        self.min_judged.set(config.min_judged)
        self.churners.set(report["churners"])
        for rule in RuleName:
            numbers = report["rules"][rule.value]
            for verdict, key in ((Verdict.HIT, "hits"), (Verdict.MISS, "misses"),
                                 (Verdict.AFTER_THE_FACT, "after_the_fact")):
                self.outcomes.labels(rule.value, verdict.value).set(numbers[key])
            self.churners_warned.labels(rule.value).set(numbers["churners_warned"])
            for gauge, key in ((self.precision, "precision"), (self.recall, "recall"),
                               (self.lead, "median_lead_days")):
                value = numbers[key]
                gauge.labels(rule.value).set(nan if value is None else value)

    def alert(self, alert: Alert) -> None:
        self.alerts.labels(alert.rule.value, alert.severity.value, alert.status.value).inc()

    def episodes(self, customer_id: str, open_severities: list[Severity]) -> None:
        """Track the customer's highest open severity; the gauges move by one, no table scan."""
        new = max(open_severities, key=lambda severity: severity.rank) if open_severities else None
        old = self._severity_of.get(customer_id)
        if old == new:
            return
        if old is not None:
            self.at_risk.labels(old.value).dec()
        if new is None:
            del self._severity_of[customer_id]
        else:
            self._severity_of[customer_id] = new
            self.at_risk.labels(new.value).inc()

    def model(self, summary: dict[str, object]) -> None:
        self.model_gate.set(1.0 if summary.get("ready") else 0.0)
        for gauge, key in ((self.model_auc, "roc_auc"), (self.model_log_loss, "log_loss"),
                           (self.model_recent_auc, "recent_roc_auc"),
                           (self.model_recent_auc_bound, "recent_roc_auc_bound")):
            value = summary.get(key)
            gauge.set(value if isinstance(value, float) else float("nan"))
        for label in ("negative", "positive"):
            count = summary.get(f"{label}_labels")
            self.model_labels.labels(label).set(count if isinstance(count, int) else 0)
        until, waiting = summary.get("learned_until"), summary.get("waiting")
        self.model_version.set(datetime.fromisoformat(until).timestamp() if isinstance(until, str) else float("nan"))
        self.model_waiting.set(waiting if isinstance(waiting, int) else 0)
