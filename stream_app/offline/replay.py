"""Offline replay: the same core over a time-ordered event file, on the event clock.

This is how rules are tested and backtested without a broker. Before each
event, customers whose due time the new watermark passes are evaluated at
exactly their due time, as a sweep would have.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from churnwatch.rules import CustomerState, Outcome, RulesConfig, apply_event, evaluate
from churnwatch.rules.clock_math import iso, to_datetime, to_seconds
from churnwatch.rules.engine import Transition, is_future
from churnwatch.rules.labels import Labelled
from churnwatch.schemas.events import Event
from churnwatch.schemas.alert import Alert
from churnwatch.schemas.dead_letter import RejectReason
from churnwatch.schemas.intake import Rejection, validate_event
from churnwatch.model import ChurnModel
from churnwatch.due_index import DueIndex


class ScoreLine(NamedTuple):
    """A snapshot's score and, once known, its label (the ``--scores`` file)."""

    customer_id: str
    taken_at: str | None
    probability: float | None
    label: int | None


@dataclass
class ReplaySummary:
    lines: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    alerts: Counter[tuple[str, str]] = field(default_factory=Counter)
    sweep_evaluations: int = 0
    customers: int = 0
    watermark: datetime | None = None
    first_usage_at: datetime | None = None  # where observation starts, for the scorecard
    model: dict[str, object] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "lines": self.lines,
            "events_applied": self.outcomes[Outcome.APPLIED],
            "duplicates": self.outcomes[Outcome.DUPLICATE],
            "too_old": self.outcomes[Outcome.TOO_OLD],
            "rejected": dict(self.rejected),
            "alerts": {f"{rule}/{status}": n for (rule, status), n in sorted(self.alerts.items())},
            "sweep_evaluations": self.sweep_evaluations,
            "customers": self.customers,
            "watermark": self.watermark.isoformat() if self.watermark else None,
            "model": self.model,
        }


class Replay:
    """Holds the states and the due index; feed lines, then ``finish``."""

    def __init__(
        self,
        config: RulesConfig,
        on_alert: Callable[[Alert], None],
        future_reference: datetime | None = None,
        model: ChurnModel | None = None,
        on_score: Callable[[ScoreLine], None] | None = None,
        on_labelled: Callable[[Labelled], None] | None = None,
    ) -> None:
        """``future_reference``: events beyond it (plus the allowed skew) are rejected
        as from the future; the CLI passes the wall clock, tests a fixed time.
        ``model`` learns from the labels as they resolve (a new one if None);
        ``on_score`` receives each snapshot's score once labelled, and the
        unlabelled ones at the end; ``on_labelled`` each labelled snapshot whole."""
        self.config = config
        self.future_reference = future_reference
        self.model = model if model is not None else ChurnModel(config.model)
        self.on_score = on_score
        self.on_labelled = on_labelled
        self.on_alert = on_alert
        self.states: dict[str, CustomerState] = {}
        self.index = DueIndex()
        self.summary = ReplaySummary()

    def feed(self, line: bytes | str) -> None:
        """One line of an event file: validated, then applied like any event."""
        self.summary.lines += 1
        event = validate_event(line)
        if isinstance(event, Rejection):
            self.summary.rejected[event.reason.value] += 1
            return
        self.feed_event(event)

    def feed_event(self, event: Event) -> None:
        """One validated event, in time order."""
        watermark = self.summary.watermark
        if is_future(event, self.future_reference, self.config):
            self.summary.rejected[RejectReason.FUTURE_EVENT.value] += 1
            return
        # As in the worker: sweep up to the new watermark, then evaluate the
        # event at its own time.
        now = max(watermark or event.occurred_at, event.occurred_at)
        self.sweep(now)
        transition = apply_event(self.states.get(event.customer_id), event, event.occurred_at,
                                 self.config, self.model)
        self.summary.outcomes[transition.outcome] += 1
        if transition.outcome is not Outcome.DUPLICATE:
            self.summary.watermark = now
            if event.type == "usage" and self.summary.first_usage_at is None:
                self.summary.first_usage_at = event.occurred_at
        self._take(event.customer_id, transition)

    def sweep(self, until: datetime) -> None:
        """Evaluate every customer due up to ``until``, each at its own due time."""
        horizon = to_seconds(until)
        while due := self.index.pop_due(horizon, limit=1):
            entry = due[0]
            self.summary.sweep_evaluations += 1
            transition = evaluate(self.states[entry.customer_id], to_datetime(entry.due_at),
                                  self.config, self.model)
            self._take(entry.customer_id, transition)

    def finish(self, until: datetime | None = None) -> ReplaySummary:
        if until is not None:
            self.sweep(until)
            self.summary.watermark = max(self.summary.watermark or until, until)
        self.summary.customers = len(self.states)
        self.summary.model = self.model.summary()
        if self.on_score is not None:
            for state in self.states.values():
                for snapshot in state.snapshots:
                    self.on_score(ScoreLine(state.customer_id, iso(snapshot.taken_at), snapshot.probability, None))
        return self.summary

    def _take(self, customer_id: str, transition: Transition) -> None:
        if transition.state is not None:
            self.states[customer_id] = transition.state
            self.index.set(customer_id, transition.state.next_due_at, 0)
        for alert in transition.alerts:
            self.summary.alerts[(alert.rule.value, alert.status.value)] += 1
            self.on_alert(alert)
        self.model.absorb(transition.assessed, transition.labelled)
        for example in transition.labelled:
            if self.on_score is not None:
                self.on_score(ScoreLine(customer_id, iso(example.taken_at), example.probability, example.label))
            if self.on_labelled is not None:
                self.on_labelled(example)


def replay_lines(
    lines: Iterable[bytes | str],
    config: RulesConfig,
    on_alert: Callable[[Alert], None],
    until: datetime | None = None,
    future_reference: datetime | None = None,
    on_score: Callable[[ScoreLine], None] | None = None,
) -> ReplaySummary:
    run = Replay(config, on_alert, future_reference, on_score=on_score)
    for line in lines:
        if line.strip():
            run.feed(line)
    return run.finish(until)


def format_summary(summary: ReplaySummary) -> str:
    return json.dumps(summary.as_dict(), indent=2)
