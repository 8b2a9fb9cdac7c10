"""Prometheus metrics of one worker, served at ``/metrics`` on its HTTP port.

Each worker has its own registry and serves only its own numbers; labels
carry no customer ids, so their number stays small.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from schemas.alert import Alert


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.events = Counter("churnwatch_events_consumed", "Valid events processed, by type and outcome",
                              ["type", "outcome"], registry=self.registry)
        self.rejected = Counter("churnwatch_events_rejected", "Messages sent to dead letters, by reason",
                                ["reason"], registry=self.registry)
        self.alerts = Counter("churnwatch_alerts_published", "Alerts published, by rule, severity and status",
                              ["rule", "severity", "status"], registry=self.registry)
        self.model_auc = Gauge("churnwatch_model_roc_auc", "Online ROC AUC on delayed labels (NaN until both classes)",
                               registry=self.registry)
        self.model_labels = Gauge("churnwatch_model_labels", "Labels the model has learned from, by label",
                                  ["label"], registry=self.registry)

    def alert(self, alert: Alert) -> None:
        self.alerts.labels(alert.rule.value, alert.severity.value, alert.status.value).inc()

    def model(self, summary: dict[str, object]) -> None:
        auc = summary.get("roc_auc")
        self.model_auc.set(auc if isinstance(auc, float) else float("nan"))
        for label in ("negative", "positive"):
            count = summary.get(f"{label}_labels")
            self.model_labels.labels(label).set(count if isinstance(count, int) else 0)
