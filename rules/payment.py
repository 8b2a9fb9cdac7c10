"""Payment failure (involuntary churn): failed charges since the last success.

A failure opens the episode; more failures within the window escalate it; a
successful payment after them resolves it. An expired card starts higher: no
retry can succeed until the customer updates it.
"""

from __future__ import annotations

from churnwatch.rules.clock_math import DAY, iso, iso_date
from churnwatch.rules.condition import Condition, Rule
from churnwatch.rules.config import RulesConfig
from churnwatch.rules.state import CustomerState, Failure
from churnwatch.rules.wording import counted
from churnwatch.schemas.alert import RuleName, Severity
from churnwatch.schemas.events import PaymentEvent

ACTIONS: dict[str, str] = {
    "card_expired": "Send a payment-method update reminder; the card on file has expired.",
    "insufficient_funds": "Offer a retry date or a payment plan; the charge lacked funds.",
    "card_declined": "Ask the customer to contact their bank or use another card.",
    "processing_error": "Retry the charge; the failure was on the payment processor's side.",
}
DEFAULT_ACTION = "Retry the charge and ask the customer to confirm their payment details."
CRITICAL_ACTION = "Call the customer within 24 h: repeated payment failures end in involuntary churn."


def unpaid_failures(state: CustomerState) -> tuple[Failure, ...]:
    paid_until = state.last_payment_success_at
    return tuple(f for f in state.failures if paid_until is None or f.at > paid_until)


def condition(state: CustomerState, now: int, config: RulesConfig) -> Condition | None:
    rule = config.payment_failure
    unpaid = unpaid_failures(state)
    if not unpaid or now - unpaid[-1].at > rule.max_episode_days * DAY:
        return None
    in_window = [f for f in unpaid if f.at > now - rule.window_days * DAY]
    count = len(in_window)
    card_expired = any(f.reason == "card_expired" for f in unpaid)
    severity = rule.card_expired_severity if card_expired else rule.severity
    if count >= rule.critical_at_failures:
        severity = Severity.CRITICAL
    elif count >= rule.escalate_at_failures:
        severity = severity.raised()
    last = unpaid[-1]
    invoices = {f.invoice_id: f.amount for f in unpaid}
    return Condition(
        severity=severity,
        opening_key=unpaid[0].event_id,
        reasons=(
            f"{counted(count, 'failed payment')} in {counted(rule.window_days, 'day')}"
            " with no successful payment since",
            f"Last failure on {iso_date(last.at)}: {last.reason} (invoice {last.invoice_id}, {last.amount:.2f})",
        ),
        recommended_action=(
            CRITICAL_ACTION if severity is Severity.CRITICAL else ACTIONS.get(last.reason, DEFAULT_ACTION)
        ),
        risk_score=round(min(0.95, 0.4 + 0.15 * count + (0.15 if card_expired else 0.0)), 3),
        evidence={
            "failures_in_window": count,
            "unpaid_failures": len(unpaid),
            "last_failure_reason": last.reason,
            "last_invoice_id": last.invoice_id,
            "last_failure_at": iso(last.at),
            "amount_due": round(sum(invoices.values()), 2),
            "open_invoices": len(invoices),
            "last_payment_success_at": iso(state.last_payment_success_at),
            "mrr": state.mrr,
        },
    )


def next_check(state: CustomerState, now: int, config: RulesConfig) -> int | None:
    """Only the episode's expiry is time-driven; escalation and resolution come with events."""
    unpaid = unpaid_failures(state)
    if not unpaid:
        return None
    expires = unpaid[-1].at + config.payment_failure.max_episode_days * DAY + 1
    return expires if now < expires else None


def resolution(state: CustomerState, now: int, config: RulesConfig) -> str:
    if state.last_payment_success_at is not None and not unpaid_failures(state):
        return f"A payment succeeded on {iso_date(state.last_payment_success_at)}"
    return f"No payment news for {counted(config.payment_failure.max_episode_days, 'day')}; episode closed"


RULE = Rule(
    fed_by=frozenset({PaymentEvent}),
    name=RuleName.PAYMENT_FAILURE,
    enabled=lambda config: config.payment_failure.enabled,
    condition=condition,
    next_check=next_check,
    resolution=resolution,
)
