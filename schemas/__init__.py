"""Event, alert and dead-letter contracts (pydantic v2); no Kafka, no Faust."""

from churnwatch.schemas.alert import Alert, AlertStatus, RuleName, Severity
from churnwatch.schemas.dead_letter import DeadLetter, RejectReason
from churnwatch.schemas.events import (
    EVENT_MODELS,
    ErasureRequest,
    Event,
    PaymentEvent,
    SubscriptionEvent,
    TicketEvent,
    UsageEvent,
    parse_event,
)

__all__ = [
    "Alert",
    "AlertStatus",
    "DeadLetter",
    "EVENT_MODELS",
    "ErasureRequest",
    "Event",
    "PaymentEvent",
    "RejectReason",
    "RuleName",
    "Severity",
    "SubscriptionEvent",
    "TicketEvent",
    "UsageEvent",
    "parse_event",
]
