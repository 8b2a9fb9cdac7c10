"""A customer erased on request: episodes closed, no fact kept, older events refused, newer ones start afresh."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from churnwatch.offline.replay import Replay
from churnwatch.rules import RulesConfig
from churnwatch.rules.engine import apply_event
from churnwatch.rules.fold import Outcome
from churnwatch.rules.state import CustomerState
from churnwatch.rules.state_encoding import outline
from churnwatch.schemas.alert import AlertStatus, RuleName
from churnwatch.schemas.events import ErasureRequest, Event, TicketEvent, UsageEvent

START = datetime(2026, 1, 1, tzinfo=UTC)


def _at(day: float) -> datetime:
    return START + timedelta(days=day)


def _distressed() -> CustomerState:
    """Three weeks of logins, then an urgent ticket asking to cancel: a support_distress episode open."""
    state = None
    for day in range(20):
        state = apply_event(state, UsageEvent(event_id=f"u{day}", customer_id="c-1", occurred_at=_at(day),
                                              kind="login"), _at(day)).state
    t = apply_event(state, TicketEvent(event_id="t1", customer_id="c-1", occurred_at=_at(20), ticket_id="T-1",
                                       action="opened", priority="urgent", category="cancellation_request",
                                       sentiment=-0.9), _at(20))
    assert [(a.rule, a.status) for a in t.alerts] == [(RuleName.SUPPORT_DISTRESS, AlertStatus.FIRING)]
    assert t.state is not None
    return t.state


def _erasure(day: float, event_id: str = "x-1") -> ErasureRequest:
    return ErasureRequest(event_id=event_id, customer_id="c-1", occurred_at=_at(day), case_id="DPR-1")


def test_an_erasure_closes_the_open_episodes_and_keeps_no_fact() -> None:
    t = apply_event(_distressed(), _erasure(21), _at(21), position=("customer-erasures", 7))
    assert [(a.rule, a.status) for a in t.alerts] == [(RuleName.SUPPORT_DISTRESS, AlertStatus.RESOLVED)]
    assert t.alerts[0].reasons == ["Closed: the customer's data was erased on request on 2026-01-22"]
    marker = t.state
    assert marker is not None and marker.forgotten
    erased = int(_at(21).timestamp())
    assert marker.model_dump(exclude_defaults=True) == {
        "customer_id": "c-1", "first_seen_at": erased, "last_event_at": erased, "erased_at": erased,
        "inputs": {"customer-erasures": 7}}
    # The marker as the table stores it, and as a restore reads it.
    assert CustomerState.from_bytes(marker.to_bytes()) == marker
    assert outline(marker.to_bytes()).customer_id == "c-1"


def test_events_from_before_the_erasure_are_refused_and_later_ones_start_afresh() -> None:
    marker = apply_event(_distressed(), _erasure(21), _at(21)).state
    assert marker is not None
    late = apply_event(marker, UsageEvent(event_id="u-late", customer_id="c-1", occurred_at=_at(10),
                                          kind="login"), _at(22))
    assert (late.outcome, late.state, late.alerts) == (Outcome.ERASED, marker, ())
    again = apply_event(marker, _erasure(21, "x-2"), _at(22))  # the same request published twice
    assert (again.outcome, again.state) == (Outcome.ERASED, marker)
    back = apply_event(marker, UsageEvent(event_id="u-30", customer_id="c-1", occurred_at=_at(30), kind="login"),
                       _at(30)).state
    assert back is not None and not back.forgotten
    assert (back.first_seen_at, back.erased_at) == (int(_at(30).timestamp()), marker.erased_at)
    assert back.last_login_at == int(_at(30).timestamp()) and back.tickets_opened == ()
    older = apply_event(back, UsageEvent(event_id="u-15", customer_id="c-1", occurred_at=_at(15), kind="login"),
                        _at(31))
    assert older.outcome is Outcome.ERASED  # still refused once the customer is back


def test_an_erasure_of_a_customer_never_seen_refuses_their_older_events() -> None:
    marker = apply_event(None, _erasure(5), _at(5)).state
    assert marker is not None and marker.forgotten
    assert apply_event(marker, UsageEvent(event_id="u1", customer_id="c-1", occurred_at=_at(1), kind="login"),
                       _at(6)).outcome is Outcome.ERASED


def test_the_replay_forgets_as_the_worker_does() -> None:
    events: list[Event] = [UsageEvent(event_id=f"u{day}", customer_id="c-1", occurred_at=_at(day), kind="login")
                           for day in range(10)]
    events += [_erasure(10), UsageEvent(event_id="u-old", customer_id="c-1", occurred_at=_at(3), kind="login")]
    replay = Replay(RulesConfig(), lambda alert: None)
    for event in events:
        replay.feed(event.model_dump_json())
    replay.finish()
    assert replay.states["c-1"].forgotten
    assert replay.summary.outcomes[Outcome.ERASED] == 1
