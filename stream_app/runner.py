"""One way through the core for every input, live or offline.

The worker (Faust) and the replay (a file, the backtest) both hand their
inputs to a ``Runner``: a decoded event goes clock -> future check -> apply ->
effects, a sweep tick goes apply -> effects. Effects kept here are the
customer's new state and its due time; the alerts come back in the ``Step``
for the caller to send (Kafka, or a list), and only after they are out does
the caller let the model learn from the step, so nothing the model does
can hold an alert back or lose it (the replay: ``learn``; the worker:
through the labels topic, which every worker reads). The model learns by
event-time week (``ChurnModel.advance``): the replay makes each week's version
itself, on its clock (``makes_versions``); a worker's follower makes it once
every partition's owner has said its week is done. Since both shells run this one function, a replay or a
backtest says what the worker will do.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from churnwatch.due_index import DueIndex
from churnwatch.model import ChurnModel
from churnwatch.rules import CustomerState, RulesConfig, apply_event
from churnwatch.rules.fold import UNCHANGED
from churnwatch.rules.clock_math import to_seconds
from churnwatch.rules.engine import Transition, advance, is_future, repeated, then
from churnwatch.schemas.alert import Alert
from churnwatch.schemas.dead_letter import RejectReason
from churnwatch.schemas.events import Event
from churnwatch.schemas.intake import Rejection


class States(Protocol):
    """Where the runner reads and keeps customer states: the worker's table, or a dict offline."""

    def get(self, customer_id: str, partition: int) -> CustomerState | None:
        """The customer's newest state (``partition``: the customer's, where the worker's store keeps it)."""

    def put(self, customer_id: str, state: CustomerState, partition: int) -> None: ...


class EventTime(Protocol):
    """The part of a clock the runner needs (the worker's wall or event clock, the replay's)."""

    def for_event(self, event_time: datetime) -> datetime:
        """The time an event is evaluated at."""

    def observe(self, source: Hashable, offset: int, event_time: datetime | None) -> None:
        """A record was read from ``source``; ``event_time`` if it was an accepted event."""


@dataclass(frozen=True, slots=True)
class Step:
    """What one input did: a transition, or why the input was rejected (then nothing else happened)."""

    customer_id: str
    transition: Transition | None = None
    rejection: Rejection | None = None
    event: Event | None = None

    @property
    def alerts(self) -> tuple[Alert, ...]:
        return () if self.transition is None else self.transition.alerts

    @property
    def changed(self) -> bool:
        """True when a state was stored (a repeated event changes nothing)."""
        t = self.transition
        return t is not None and t.outcome not in UNCHANGED and t.state is not None


class Runner:
    """The core's one entry for inputs; holds no state of its own but the objects it is given."""

    def __init__(self, rules: RulesConfig, model: ChurnModel, states: States, index: DueIndex,
                 clock: EventTime, makes_versions: bool = False) -> None:
        """``makes_versions``: the inputs come in time order, every customer swept up to each input's time
        (a replay), so the model's version of an input's day can be made before it is evaluated."""
        self.rules = rules
        self.model = model
        self.states = states
        self.index = index
        self.clock = clock
        self.makes_versions = makes_versions

    def event(self, decoded: Event | Rejection, reference: datetime | None, source: tuple[str, int] | None = None,
              offset: int = 0, partition: int = 0) -> Step:
        """A decoded input from ``source`` at ``offset``; ``reference`` judges "from the future" (None: nothing is).

        "Future" is judged against a reference time the caller gives (the
        worker: the wall clock, whichever clock ages customers, since an event
        clock cannot tell a broken publisher from a partition read ahead).
        """
        if not isinstance(decoded, Rejection) and is_future(decoded, reference, self.rules):
            decoded = Rejection(RejectReason.FUTURE_EVENT, _too_far_ahead(decoded, reference, self.rules))
        if isinstance(decoded, Rejection):
            self.clock.observe(source, offset, None)
            return Step("", rejection=decoded)
        now = self.clock.for_event(decoded.occurred_at)
        if self.makes_versions:
            self.model.advance(to_seconds(now))
        position = None if source is None else (source[0], offset)
        state = self.states.get(decoded.customer_id, partition)
        # Time passes first: the customer's due times up to the event are judged without it, as the replay's
        # sweep judges them before it reads the event, and a snapshot whose model version is made meanwhile is
        # scored as of its time, as a tick would (a repeat changes nothing, not even that).
        passed = None if state is None or repeated(state, decoded, position) else advance(
            state, to_seconds(decoded.occurred_at), self.rules, self.model)
        transition = apply_event(state if passed is None else passed.state, decoded, now, self.rules, self.model,
                                 position)
        if passed is not None:
            transition = then(passed, transition)
        # A repeat moves the clock too: its time says how far its partition is read. A worker that took
        # partitions over and read them again from their start (every event a repeat) kept its clock
        # where its first new event put it, and its sweep, and the group's model versions, waited there.
        self.clock.observe(source, offset, decoded.occurred_at)
        return self._keep(Step(decoded.customer_id, transition, event=decoded), partition)

    def tick(self, customer_id: str, at: datetime, partition: int = 0, until: datetime | None = None) -> Step:
        """A sweep tick: the customer judged at each due time up to ``until`` (the sweep's time; else ``at``)
        with no event, and a waiting snapshot scored if its model version is made. An unknown customer, or one
        with nothing due (an event read since judged it), is left as it is."""
        state = self.states.get(customer_id, partition)
        if state is None:
            return Step(customer_id)
        if self.makes_versions:
            self.model.advance(to_seconds(at))
        judged = advance(state, to_seconds(until or at), self.rules, self.model)
        return Step(customer_id) if judged is None else self._keep(Step(customer_id, judged), partition)

    def learn(self, step: Step) -> int:
        """Once the step's alerts are out: the model takes its assessments and labels (to learn by week)."""
        t = step.transition
        return 0 if t is None else self.model.absorb(t.assessed, t.labelled)

    def _keep(self, step: Step, partition: int) -> Step:
        if step.changed:
            assert step.transition is not None and step.transition.state is not None
            state = step.transition.state
            self.states.put(step.customer_id, state, partition)
            self.index.set(step.customer_id, state.next_due_at, partition)
        return step


def _too_far_ahead(event: Event, reference: datetime | None, rules: RulesConfig) -> str:
    at = reference.isoformat() if reference is not None else "?"
    return (f"occurred_at {event.occurred_at.isoformat()} is more than "
            f"{rules.state.max_future_hours} h ahead of the reference clock ({at})")
