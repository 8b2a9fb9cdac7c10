"""Property tests: the facts depend on the set of events, not their order or repeats."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churnwatch.rules import CustomerState, RulesConfig, apply_event
from churnwatch.rules.fold import Outcome
from churnwatch.schemas.events import Event, PaymentEvent, SubscriptionEvent, TicketEvent, UsageEvent
from churnwatch.testing.events import T0

CONFIG = RulesConfig()
# All events within 40 days: inside the 60-day kept window, so none is "too old".
moments = st.integers(min_value=0, max_value=40 * 86_400).map(lambda s: T0 + timedelta(seconds=s))


@st.composite
def events(draw: st.DrawFn) -> list[Event]:
    count = draw(st.integers(min_value=1, max_value=25))
    out: list[Event] = []
    for n in range(count):
        at = draw(moments)
        common = {"event_id": f"e{n}", "customer_id": "c1", "occurred_at": at}
        kind = draw(st.sampled_from(["usage", "payment", "ticket", "subscription"]))
        if kind == "usage":
            out.append(UsageEvent(**common, kind=draw(st.sampled_from(["login", "purchase", "session"])),
                                  quantity=draw(st.integers(1, 5))))
        elif kind == "payment":
            status = draw(st.sampled_from(["failed", "succeeded"]))
            out.append(PaymentEvent(**common, status=status, invoice_id=f"i{n % 3}", amount=10.0,
                                    currency="EUR",
                                    failure_reason="card_expired" if status == "failed" else None))
        elif kind == "ticket":
            out.append(TicketEvent(**common, ticket_id=f"t{n % 4}",
                                   action=draw(st.sampled_from(["opened", "closed", "reopened", "updated"])),
                                   priority=draw(st.sampled_from(["normal", "urgent"])),
                                   sentiment=draw(st.none() | st.floats(-1, 1, allow_nan=False))))
        else:
            before = draw(st.sampled_from([50.0, 100.0]))
            out.append(SubscriptionEvent(**common, action="plan_changed", plan="p",
                                         mrr=draw(st.sampled_from([20.0, 50.0, 100.0])),
                                         previous_mrr=before))
    return out


def fold_all(sequence: list[Event]) -> CustomerState:
    state: CustomerState | None = None
    now = None
    for event in sequence:
        now = max(now or event.occurred_at, event.occurred_at)
        transition = apply_event(state, event, now, CONFIG)
        assert transition.outcome in (Outcome.APPLIED, Outcome.DUPLICATE)
        state = transition.state
    assert state is not None
    return state


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(events(), st.randoms(use_true_random=False))
def test_reordering_does_not_change_the_facts(sequence: list[Event], rng) -> None:
    shuffled = list(sequence)
    rng.shuffle(shuffled)
    assert fold_all(shuffled).facts() == fold_all(sorted(sequence, key=lambda e: e.occurred_at)).facts()


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(events(), st.data())
def test_duplicates_do_not_change_the_facts(sequence: list[Event], data: st.DataObject) -> None:
    repeats = data.draw(st.lists(st.sampled_from(sequence), max_size=10))
    positions = data.draw(st.lists(st.integers(0, len(sequence)), min_size=len(repeats), max_size=len(repeats)))
    with_repeats = list(sequence)
    for event, position in zip(repeats, positions, strict=True):
        with_repeats.insert(position, event)
    assert fold_all(with_repeats).facts() == fold_all(sequence).facts()


@settings(max_examples=100, deadline=None)
@given(events())
def test_state_survives_its_own_serialisation(sequence: list[Event]) -> None:
    state = fold_all(sequence)
    assert CustomerState.from_bytes(state.to_bytes()) == state
