"""Events through the core, as the worker would take them, in a line of a test.

``run`` is the whole path (the runner, the sweep, the model, every customer):
what alerts would these events raise? ``fold`` and ``at`` are the core alone
for one customer, to look at the state between steps.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from churnwatch.offline.replay import Replay
from churnwatch.rules import CustomerState, RulesConfig, apply_event, evaluate
from churnwatch.schemas.alert import Alert
from churnwatch.schemas.events import Event

DEFAULTS = RulesConfig()


def run(events: Iterable[Event], rules: RulesConfig = DEFAULTS, until: datetime | None = None) -> list[Alert]:
    """Every alert the worker would send for ``events``, in the order it would send them.

    The events are sorted by time and replayed on the event clock (the same
    runner as the worker's); customers due for a sweep are judged at their
    due time, up to the last event or ``until`` if later.
    """
    alerts: list[Alert] = []
    replay = Replay(rules, alerts.append)
    for event in sorted(events, key=lambda e: e.occurred_at):
        replay.feed_event(event)
    replay.finish(until)
    return alerts


def fold(events: Iterable[Event], rules: RulesConfig = DEFAULTS) -> tuple[CustomerState, list[Alert]]:
    """One customer's events applied in the order given, each at the newest time so far; no sweep."""
    state: CustomerState | None = None
    alerts: list[Alert] = []
    now: datetime | None = None
    for event in events:
        now = max(now or event.occurred_at, event.occurred_at)
        transition = apply_event(state, event, now, rules)
        state = transition.state
        alerts.extend(transition.alerts)
    if state is None:
        raise ValueError("fold needs at least one event")
    return state, alerts


def at(state: CustomerState, now: datetime, rules: RulesConfig = DEFAULTS) -> tuple[CustomerState, list[Alert]]:
    """The customer judged at ``now`` with no new event, as a sweep tick would."""
    transition = evaluate(state, now, rules)
    assert transition.state is not None
    return transition.state, list(transition.alerts)
