"""Input event contracts: what backend services publish to churnwatch.

Every event is a JSON object with a ``type`` discriminator, so one topic or one
JSONL file may mix all four kinds and still be validated line by line.

Choices that publishers should know (also in the README):

* Unknown fields are rejected (``extra="forbid"``): a misspelt optional field
  would otherwise vanish silently and the rules would see a default instead.
  New fields come with a new ``schema_version``.
* Times must carry a timezone (RFC 3339 with ``Z`` or an offset); a naive time
  is ambiguous by hours, which matters to rules measured in days.
* Numbers and times are not coerced: ``"amount": "9.99"`` or a Unix timestamp
  for ``occurred_at`` is an error, since a publisher that sends those is likely
  sending something else wrong too. Enum fields take their string values.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal, TypeAlias

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, model_validator

SCHEMA_VERSION = 1

MAX_ID_CHARS = 256
NonEmptyId = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS, pattern=r"\S")]
Money = Annotated[float, Field(ge=0, allow_inf_nan=False, strict=True)]
def _not_before_1970(moment: datetime) -> datetime:
    if moment < _EPOCH:
        raise ValueError("must not be before 1970-01-01T00:00:00Z")
    return moment


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EventTime = Annotated[AwareDatetime, Field(strict=True), AfterValidator(_not_before_1970)]
Count = Annotated[int, Field(strict=True)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code")]


class _EventBase(BaseModel):
    """Fields every event carries; ``event_id`` makes redelivery harmless."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: NonEmptyId = Field(description="Unique per event; a repeated id is ignored.")
    customer_id: NonEmptyId = Field(description="Also the Kafka message key.")
    occurred_at: EventTime = Field(description="Event time, RFC 3339 with timezone.")
    schema_version: Literal[1] = Field(default=SCHEMA_VERSION)


class UsageKind(StrEnum):
    LOGIN = "login"
    PURCHASE = "purchase"
    FEATURE_USE = "feature_use"
    SESSION = "session"
    API_CALL = "api_call"
    OTHER = "other"


class UsageEvent(_EventBase):
    """Product activity; logins and purchases drive the disengagement rule."""

    type: Literal["usage"] = "usage"
    kind: UsageKind
    quantity: Annotated[Count, Field(ge=1, le=1_000_000)] = 1
    amount: Money | None = None
    currency: Currency | None = None
    feature: Annotated[str, Field(min_length=1, max_length=128)] | None = None


class PaymentStatus(StrEnum):
    FAILED = "failed"
    SUCCEEDED = "succeeded"


class FailureReason(StrEnum):
    CARD_EXPIRED = "card_expired"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    CARD_DECLINED = "card_declined"
    PROCESSING_ERROR = "processing_error"
    OTHER = "other"


class PaymentEvent(_EventBase):
    """A charge attempt; failures are the main signal of involuntary churn."""

    type: Literal["payment"] = "payment"
    status: PaymentStatus
    invoice_id: NonEmptyId
    amount: Money
    currency: Currency
    failure_reason: FailureReason | None = Field(
        default=None, description="Required when status is failed."
    )
    attempt: Annotated[Count, Field(ge=1, le=1000)] = 1

    @model_validator(mode="after")
    def _failure_has_reason(self) -> PaymentEvent:
        if self.status is PaymentStatus.FAILED and self.failure_reason is None:
            raise ValueError("failure_reason is required when status is 'failed'")
        return self


class TicketAction(StrEnum):
    OPENED = "opened"
    UPDATED = "updated"
    CLOSED = "closed"
    REOPENED = "reopened"


class TicketPriority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class TicketCategory(StrEnum):
    BILLING = "billing"
    BUG = "bug"
    HOW_TO = "how_to"
    CANCELLATION_REQUEST = "cancellation_request"
    OTHER = "other"


class TicketEvent(_EventBase):
    """A support ticket's life; bursts, urgency and bad sentiment mean distress."""

    type: Literal["ticket"] = "ticket"
    ticket_id: NonEmptyId
    action: TicketAction
    priority: TicketPriority = TicketPriority.NORMAL
    category: TicketCategory = TicketCategory.OTHER
    sentiment: Annotated[float, Field(ge=-1, le=1, allow_inf_nan=False, strict=True)] | None = None
    csat: Annotated[Count, Field(ge=1, le=5)] | None = None


class SubscriptionAction(StrEnum):
    STARTED = "started"
    RENEWED = "renewed"
    PLAN_CHANGED = "plan_changed"
    CANCELLED = "cancelled"


class CancelReason(StrEnum):
    VOLUNTARY = "voluntary"
    INVOLUNTARY = "involuntary"


class SubscriptionEvent(_EventBase):
    """Plan and revenue changes; a falling MRR is revenue churn."""

    type: Literal["subscription"] = "subscription"
    action: SubscriptionAction
    plan: Annotated[str, Field(min_length=1, max_length=128)]
    mrr: Money = Field(description="Monthly recurring revenue after this change.")
    previous_mrr: Money | None = None
    renews_at: EventTime | None = None
    cancel_reason: CancelReason | None = None


Event: TypeAlias = Annotated[
    UsageEvent | PaymentEvent | TicketEvent | SubscriptionEvent,
    Field(discriminator="type"),
]

EVENT_MODELS: dict[str, type[_EventBase]] = {
    "usage": UsageEvent,
    "payment": PaymentEvent,
    "ticket": TicketEvent,
    "subscription": SubscriptionEvent,
}

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def parse_event(raw: bytes | str) -> UsageEvent | PaymentEvent | TicketEvent | SubscriptionEvent:
    """Validate one JSON event of any type; raises ``pydantic.ValidationError``."""
    return EVENT_ADAPTER.validate_json(raw)
