"""Short constructors for events in tests: a customer, a time, what happened.

Times are days from ``T0`` (``day(3.5)`` is noon on the fourth day); ids are
unique within a process unless given, so a repeated event is written by
passing the same ``event_id`` twice.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from churnwatch.schemas.events import PaymentEvent, SubscriptionEvent, TicketEvent, UsageEvent

T0 = datetime(2026, 1, 1, tzinfo=UTC)
_ids = itertools.count()


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def _id(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}"


def usage(at: datetime, kind: str = "purchase", quantity: int = 1, customer: str = "c1",
          event_id: str | None = None, feature: str | None = None) -> UsageEvent:
    return UsageEvent(event_id=event_id or _id(kind), customer_id=customer, occurred_at=at,
                      kind=kind, quantity=quantity, feature=feature)


def login(at: datetime, customer: str = "c1") -> UsageEvent:
    return usage(at, "login", customer=customer)


def failed(at: datetime, reason: str = "card_declined", customer: str = "c1",
           invoice: str = "inv-1", event_id: str | None = None) -> PaymentEvent:
    return PaymentEvent(event_id=event_id or _id("fail"), customer_id=customer, occurred_at=at,
                        status="failed", invoice_id=invoice, amount=100.0, currency="EUR",
                        failure_reason=reason)


def succeeded(at: datetime, customer: str = "c1", invoice: str = "inv-1") -> PaymentEvent:
    return PaymentEvent(event_id=_id("paid"), customer_id=customer, occurred_at=at,
                        status="succeeded", invoice_id=invoice, amount=100.0, currency="EUR")


def ticket(at: datetime, action: str = "opened", customer: str = "c1", ticket_id: str | None = None,
           priority: str = "normal", category: str = "bug", sentiment: float | None = None) -> TicketEvent:
    return TicketEvent(event_id=_id("ticket"), customer_id=customer, occurred_at=at,
                       ticket_id=ticket_id or _id("t"), action=action, priority=priority,
                       category=category, sentiment=sentiment)


def subscription(at: datetime, mrr: float, action: str = "plan_changed", customer: str = "c1",
                 previous_mrr: float | None = None, plan: str = "pro",
                 billing_period_months: int | None = None, renews_at: datetime | None = None) -> SubscriptionEvent:
    return SubscriptionEvent(event_id=_id("sub"), customer_id=customer, occurred_at=at,
                             action=action, plan=plan, mrr=mrr, previous_mrr=previous_mrr,
                             billing_period_months=billing_period_months, renews_at=renews_at,
                             schema_version=1 if billing_period_months is None else 2)
