"""Unit tests of the functional core as it stands: no broker, no clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rules import CustomerState, apply_event
from rules.alert_ids import alert_id
from rules.priority import priority
from schemas.alert import RuleName, Severity
from schemas.events import PaymentEvent, SubscriptionEvent, UsageEvent

T0 = datetime(2026, 1, 5, tzinfo=UTC)


def _failed(event_id: str, reason: str = "card_declined", at: datetime = T0) -> PaymentEvent:
    return PaymentEvent(event_id=event_id, customer_id="c", occurred_at=at, status="failed",
                        invoice_id="i", amount=30.0, currency="EUR", failure_reason=reason)


def test_a_failed_payment_fires_one_alert_with_evidence() -> None:
    transition = apply_event(None, _failed("p1", "card_expired"), now=T0)
    (alert,) = transition.alerts
    assert alert.rule is RuleName.PAYMENT_FAILURE
    assert alert.severity is Severity.HIGH
    assert alert.evidence["failure_reason"] == "card_expired"
    assert alert.triggered_at == T0
    assert transition.state.payment_failures == 1


def test_other_failures_rate_lower_than_an_expired_card() -> None:
    (alert,) = apply_event(None, _failed("p1", "insufficient_funds"), now=T0).alerts
    assert alert.severity is Severity.WARNING


def test_the_alert_id_is_deterministic() -> None:
    first = apply_event(None, _failed("p1"), now=T0).alerts[0]
    again = apply_event(None, _failed("p1"), now=T0 + timedelta(days=3)).alerts[0]
    other = apply_event(None, _failed("p2"), now=T0).alerts[0]
    assert first.alert_id == again.alert_id == alert_id("c", RuleName.PAYMENT_FAILURE, "p1")
    assert other.alert_id != first.alert_id


def test_state_follows_events_and_survives_serialisation() -> None:
    state = None
    events = [
        SubscriptionEvent(event_id="s", customer_id="c", occurred_at=T0, action="started",
                          plan="pro", mrr=500.0),
        UsageEvent(event_id="u", customer_id="c", occurred_at=T0 + timedelta(days=2), kind="login"),
        _failed("p", at=T0 + timedelta(days=1)),
    ]
    alerts = []
    for event in events:
        transition = apply_event(state, event, now=event.occurred_at)
        state = CustomerState.from_bytes(transition.state.to_bytes())
        alerts.extend(transition.alerts)
    assert state is not None
    assert state.events_seen == 3
    assert state.mrr == 500.0
    assert state.last_event_at == T0 + timedelta(days=2)  # a late event does not move it back
    assert alerts[0].evidence["mrr"] == 500.0
    assert alerts[0].priority == priority(Severity.WARNING, 500.0)


def test_priority_weighs_severity_first_then_revenue() -> None:
    assert priority(Severity.CRITICAL, 0) > priority(Severity.WARNING, 1_000_000)
    assert priority(Severity.HIGH, 0) > priority(Severity.INFO, 1_000_000)
    assert priority(Severity.WARNING, 5_000) > priority(Severity.WARNING, 50) > priority(Severity.WARNING, 0)
    assert 0 <= priority(Severity.INFO, 0) and priority(Severity.CRITICAL, 10**9) <= 100
