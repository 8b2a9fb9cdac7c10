"""Offline replay: the same core over a time-ordered event file, on the event clock.

This is how rules are tested and backtested without a broker. Before each
event, customers whose due time the new watermark passes are evaluated at
exactly their due time, as a sweep would have.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from churnwatch.due_index import DueIndex
from churnwatch.model import ChurnModel
from churnwatch.rules import CustomerState, Outcome, RulesConfig
from churnwatch.rules.fold import UNCHANGED
from churnwatch.rules.clock_math import DAY, iso, to_datetime, to_seconds
from churnwatch.rules.labels import Labelled
from churnwatch.runner import Runner, Step
from churnwatch.scoreboard import Scoreboard
from churnwatch.schemas.alert import Alert
from churnwatch.schemas.events import Event
from churnwatch.schemas.intake import validate_event


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
    rule_outcomes: dict[str, object] = field(default_factory=dict)  # churnwatch.scoreboard's report

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
            "rule_outcomes": self.rule_outcomes,
        }


class MemoryStates(dict[str, CustomerState]):
    """Customer states in memory, for the runner (the partition does not matter offline)."""

    # The runner's store of states is asked by (customer, partition); a dict's get takes a default there.
    def get(self, customer_id: str, partition: int = 0) -> CustomerState | None:  # type: ignore[override]
        return super().get(customer_id)

    def put(self, customer_id: str, state: CustomerState, partition: int) -> None:
        self[customer_id] = state


class ReplayClock:
    """Event time, where time passing is a sweep.

    Before an event is evaluated, every customer due up to the newest event
    time seen is judged at exactly their due time, as the worker's sweep
    would have; the watermark moves with every accepted event.
    """

    def __init__(self, sweep: Callable[[datetime], None]) -> None:
        self.watermark: datetime | None = None
        self._sweep = sweep

    def for_event(self, event_time: datetime) -> datetime:
        self._sweep(max(self.watermark or event_time, event_time))
        return event_time

    def observe(self, source: Hashable, offset: int, event_time: datetime | None) -> None:
        if event_time is not None:
            self.watermark = max(self.watermark or event_time, event_time)


class Replay:
    """Holds the states and the due index; feed lines, then ``finish``."""

    def __init__(
        self,
        config: RulesConfig,
        on_alert: Callable[[Alert], None],
        future_reference: datetime | None = None,
        model: ChurnModel | None = None,
        on_score: Callable[[ScoreLine], object] | None = None,
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
        self.states = MemoryStates()
        self.index = DueIndex()
        self.clock = ReplayClock(self.sweep)
        self.runner = Runner(config, self.model, self.states, self.index, self.clock, makes_versions=True)
        self.summary = ReplaySummary()
        self.scoreboard = Scoreboard()  # the alerts' outcomes, as a worker counts them live

    def feed(self, line: bytes | str) -> None:
        """One line of an event file: validated, then applied like any event."""
        self.summary.lines += 1
        self._deliver(self.runner.event(validate_event(line), self.future_reference))

    def feed_event(self, event: Event) -> None:
        """One validated event, in time order."""
        self._deliver(self.runner.event(event, self.future_reference))

    def sweep(self, until: datetime) -> None:
        """Evaluate every customer due up to ``until``, each at its own due time."""
        horizon = to_seconds(until)
        while due := self.index.pop_due(horizon, limit=1):
            entry = due[0]
            self.summary.sweep_evaluations += 1
            self._deliver(self.runner.tick(entry.customer_id, to_datetime(entry.due_at)))

    def finish(self, until: datetime | None = None) -> ReplaySummary:
        self.summary.watermark = self.clock.watermark
        if until is not None:
            self.sweep(until)
            self.summary.watermark = max(self.summary.watermark or until, until)
        self.summary.customers = len(self.states)
        if self.summary.watermark is not None:  # nothing more will come: what is labelled is learned
            self.model.advance(to_seconds(self.summary.watermark) + self.config.model.snapshot_every_days * DAY)
        self.summary.model = self.model.summary()
        self.summary.rule_outcomes = self.scoreboard.report()
        if self.on_score is not None:
            for state in self.states.values():
                for snapshot in state.snapshots:
                    self.on_score(ScoreLine(state.customer_id, iso(snapshot.taken_at), snapshot.probability, None))
        return self.summary

    def _deliver(self, step: Step) -> None:
        summary = self.summary
        if step.rejection is not None:
            summary.rejected[step.rejection.reason.value] += 1
            return
        event, transition = step.event, step.transition
        if event is not None and transition is not None:
            summary.outcomes[transition.outcome] += 1
            counted = transition.outcome not in UNCHANGED
            if counted and event.type == "usage" and summary.first_usage_at is None:
                summary.first_usage_at = event.occurred_at
        for alert in step.alerts:
            summary.alerts[(alert.rule.value, alert.status.value)] += 1
            self.on_alert(alert)
        if transition is not None and (transition.judged or transition.churns):
            self.scoreboard.add(transition.judged, transition.churns)
        self.runner.learn(step)
        for example in () if transition is None else transition.labelled:
            if self.on_score is not None:
                self.on_score(ScoreLine(step.customer_id, iso(example.taken_at), example.probability, example.label))
            if self.on_labelled is not None:
                self.on_labelled(example)


def replay_lines(
    lines: Iterable[bytes | str],
    config: RulesConfig,
    on_alert: Callable[[Alert], None],
    until: datetime | None = None,
    future_reference: datetime | None = None,
    on_score: Callable[[ScoreLine], object] | None = None,
    model: ChurnModel | None = None,
) -> ReplaySummary:
    run = Replay(config, on_alert, future_reference, model=model, on_score=on_score)
    for line in lines:
        if line.strip():
            run.feed(line)
    return run.finish(until)


def format_summary(summary: ReplaySummary) -> str:
    return json.dumps(summary.as_dict(), indent=2)
