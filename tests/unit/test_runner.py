"""The runner: the one way an input goes through the core, for the worker and the replay alike."""

from __future__ import annotations

from collections.abc import Hashable
from datetime import datetime, timedelta

from churnwatch.due_index import DueIndex
from churnwatch.model import ChurnModel
from churnwatch.offline.replay import MemoryStates
from churnwatch.rules import Outcome, RulesConfig
from churnwatch.runner import Runner
from churnwatch.schemas.alert import RuleName
from churnwatch.schemas.dead_letter import RejectReason
from churnwatch.schemas.intake import Rejection
from churnwatch.testing.events import day, failed, login


class RecordingClock:
    """Event time, and a record of what the runner told the clock."""

    def __init__(self) -> None:
        self.observed: list[tuple[Hashable, int, datetime | None]] = []

    def for_event(self, event_time: datetime) -> datetime:
        return event_time

    def observe(self, source: Hashable, offset: int, event_time: datetime | None) -> None:
        self.observed.append((source, offset, event_time))


def _runner() -> tuple[Runner, MemoryStates, DueIndex, RecordingClock]:
    rules = RulesConfig()
    states, index, clock = MemoryStates(), DueIndex(), RecordingClock()
    return Runner(rules, ChurnModel(rules.model), states, index, clock), states, index, clock


def test_an_event_is_applied_kept_and_its_due_time_indexed() -> None:
    runner, states, index, clock = _runner()
    event = failed(day(3), "card_expired", customer="acme")
    step = runner.event(event, reference=day(3), source=("payments", 2), offset=7, partition=2)
    assert step.rejection is None and step.event == event and step.changed
    assert [a.rule for a in step.alerts] == [RuleName.PAYMENT_FAILURE]
    assert states["acme"] is step.transition.state
    assert clock.observed == [(("payments", 2), 7, day(3))]
    due = index.pop_due(10**12, 10)
    assert [(d.customer_id, d.partition) for d in due] == [("acme", 2)]


def test_a_repeated_event_changes_nothing_but_its_time_moves_the_clock() -> None:
    """How far a partition is read: a worker reading taken-over partitions again from their start must not stall."""
    runner, states, _, clock = _runner()
    event = login(day(1), "acme")
    runner.event(event, reference=None, source="usage", offset=0)
    kept = states["acme"]
    step = runner.event(event, reference=None, source="usage", offset=1)
    assert step.transition is not None and step.transition.outcome is Outcome.DUPLICATE
    assert not step.changed and step.alerts == () and states["acme"] is kept
    assert clock.observed[-1] == ("usage", 1, day(1))


def test_an_event_from_the_future_is_rejected_before_the_core_sees_it() -> None:
    runner, states, _, clock = _runner()
    reference = day(1)
    step = runner.event(login(reference + timedelta(hours=25), "acme"), reference, source="usage", offset=4)
    assert step.rejection is not None and step.rejection.reason is RejectReason.FUTURE_EVENT
    assert "ahead" in step.rejection.error
    assert "acme" not in states and clock.observed == [("usage", 4, None)]


def test_a_rejected_message_only_moves_the_clock_past_it() -> None:
    runner, states, _, clock = _runner()
    rejection = Rejection(RejectReason.NOT_JSON, "not JSON")
    step = runner.event(rejection, reference=None, source="usage", offset=9)
    assert step.rejection is rejection and step.transition is None and not states
    assert clock.observed == [("usage", 9, None)]


def test_a_tick_judges_a_known_customer_at_its_time_and_skips_an_unknown_one() -> None:
    runner, states, _, _ = _runner()
    runner.event(login(day(0), "acme"), reference=None)
    step = runner.tick("acme", day(40))
    assert step.changed and step.transition is not None
    assert states["acme"] is step.transition.state
    assert runner.tick("nobody", day(40)).transition is None


def test_a_tick_and_an_event_at_the_same_instant_give_the_same_alerts_whichever_comes_first() -> None:
    """A sweep and a ticket at the instant a ticket ages out of the window: the due time is judged first either
    way (as the replay does), so support_distress keeps one alert id."""
    from churnwatch.testing.events import ticket

    tickets = [ticket(day(n), ticket_id=f"t{n}") for n in (1, 2, 3)]
    ages_out = day(15)  # the first ticket leaves the 14-day window
    late = ticket(ages_out, ticket_id="t15")

    def alerts(tick_first: bool) -> list[tuple[str, str, int, str]]:
        runner, _, index, _ = _runner()
        sent = []
        for offset, event in enumerate(tickets):
            sent += runner.event(event, reference=None, source=("tickets", 0), offset=offset).alerts
        assert index.next_due_at() == int(ages_out.timestamp())
        steps = ([lambda: runner.tick("c1", ages_out, until=ages_out),
                  lambda: runner.event(late, reference=None, source=("tickets", 0), offset=3)])
        for step in steps if tick_first else reversed(steps):
            sent += step().alerts
        return [(a.alert_id, a.status.value, a.sequence, a.model_dump_json()) for a in sent]

    tick_first, event_first = alerts(True), alerts(False)
    assert tick_first == event_first
    assert [status for _, status, _, _ in tick_first] == ["firing", "resolved", "firing"]
    assert len({alert_id for alert_id, _, _, _ in tick_first}) == 2  # the new ticket opens a new episode
