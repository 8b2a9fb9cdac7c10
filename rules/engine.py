"""The functional core: (state, event, now) -> (new state, alerts).

No Faust, no Kafka, no wall clock: the live worker and the offline replay call
the same function, so what a test proves here holds in production.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from rules.alert_ids import alert_id
from rules.priority import priority
from rules.state import CustomerState
from schemas.alert import Alert, AlertStatus, RuleName, Severity
from schemas.events import (
    Event,
    FailureReason,
    PaymentEvent,
    PaymentStatus,
    SubscriptionEvent,
)

RECOMMENDED_ACTIONS: dict[FailureReason | None, str] = {
    FailureReason.CARD_EXPIRED: "Send a payment-method update reminder; the card on file has expired.",
    FailureReason.INSUFFICIENT_FUNDS: "Offer a retry date or a payment plan; the charge lacked funds.",
}
DEFAULT_PAYMENT_ACTION = "Retry the charge and ask the customer to confirm their payment details."


@dataclass(frozen=True, slots=True)
class Transition:
    state: CustomerState
    alerts: tuple[Alert, ...]


def apply_event(state: CustomerState | None, event: Event, now: datetime) -> Transition:
    """Fold one validated event into the customer's state and derive its alerts.

    ``now`` is the clock of the caller (wall time live, event time in replay);
    it is accepted here so that time-based rules never reach for a clock.
    """
    del now  # Only event time matters to the rules implemented so far.
    if state is None:
        state = CustomerState(
            customer_id=event.customer_id,
            first_seen_at=event.occurred_at,
            last_event_at=event.occurred_at,
        )
    updates: dict[str, object] = {
        "events_seen": state.events_seen + 1,
        "last_event_at": max(state.last_event_at, event.occurred_at),
    }
    alerts: tuple[Alert, ...] = ()
    if isinstance(event, SubscriptionEvent):
        updates["mrr"] = event.mrr
    elif isinstance(event, PaymentEvent) and event.status is PaymentStatus.FAILED:
        updates["payment_failures"] = state.payment_failures + 1
        updates["last_failure_reason"] = event.failure_reason
        alerts = (_payment_failure_alert(state, event, state.payment_failures + 1),)
    return Transition(state.model_copy(update=updates), alerts)


def _payment_failure_alert(state: CustomerState, event: PaymentEvent, failures: int) -> Alert:
    reason = event.failure_reason
    severity = Severity.HIGH if reason is FailureReason.CARD_EXPIRED else Severity.WARNING
    return Alert(
        alert_id=alert_id(event.customer_id, RuleName.PAYMENT_FAILURE, event.event_id),
        customer_id=event.customer_id,
        rule=RuleName.PAYMENT_FAILURE,
        status=AlertStatus.FIRING,
        severity=severity,
        priority=priority(severity, state.mrr),
        risk_score=0.7 if severity is Severity.HIGH else 0.5,
        reasons=[f"Payment of {event.amount:.2f} {event.currency} failed ({reason})"],
        evidence={
            "invoice_id": event.invoice_id,
            "amount": event.amount,
            "currency": event.currency,
            "failure_reason": str(reason),
            "attempt": event.attempt,
            "failures_seen": failures,
            "mrr": state.mrr,
        },
        recommended_action=RECOMMENDED_ACTIONS.get(reason, DEFAULT_PAYMENT_ACTION),
        triggered_at=event.occurred_at,
        episode_started_at=event.occurred_at,
    )
