"""A stored state's outline (customer, due time, open severities) read without building the state."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings

from churnwatch.rules import RulesConfig, apply_event
from churnwatch.rules.state_encoding import outline
from churnwatch.schemas.events import Event, PaymentEvent, UsageEvent
from churnwatch.testing.events import T0
from tests.unit.rules.test_state_encoding import expected_outline
from tests.unit.rules.test_state_properties import events


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(events())
def test_the_outline_of_any_state_is_its_fields(history: list[Event]) -> None:
    state = None
    for event in history:
        state = apply_event(state, event, event.occurred_at, RulesConfig()).state or state
    assert state is not None
    assert outline(state.to_bytes()) == expected_outline(state)
    assert outline(state.model_dump_json().encode()) == expected_outline(state)  # plain JSON, as older versions wrote


def test_ids_that_look_like_the_fields_do_not_fool_it() -> None:
    customer = 'c "next_due_at":{"episodes":{ é'
    state = None
    for n, event_id in enumerate(("next_due_at", "episodes", '"episodes":{', ',"next_due_at":5}')):
        event: Event = UsageEvent(event_id=event_id, customer_id=customer, occurred_at=T0 + timedelta(hours=n),
                                  kind="feature_use", feature="episodes")
        state = apply_event(state, event, event.occurred_at).state or state
    failed = PaymentEvent(event_id="p", customer_id=customer, occurred_at=T0 + timedelta(days=1), status="failed",
                          invoice_id="i", amount=5.0, currency="EUR", failure_reason="card_expired")
    state = apply_event(state, failed, failed.occurred_at).state
    assert state is not None and state.episodes and state.next_due_at is not None
    assert outline(state.to_bytes()) == expected_outline(state)
