"""Input event contracts: what backend services publish to churnwatch.

Every event is a JSON object with a ``type`` discriminator, so one topic or one
JSONL file may mix all five kinds and still be validated line by line.

Choices that publishers should know (also in docs/publishing.md):

* Unknown fields are rejected (``extra="forbid"``): a misspelt optional field
  would otherwise vanish silently and the rules would see a default instead.
  New fields come with a new ``schema_version``: version 2 added
  ``billing_period_months`` to subscription events. Workers accept every
  version; an event that uses a field newer than the version it declares is
  refused, so a publisher learns of the mismatch instead of a rule guessing.
* Times are RFC 3339 date-times with a timezone (``2026-01-05T12:00:00Z`` or
  an offset ``+01:00``), from 1970 on; a naive time is ambiguous by hours,
  which matters to rules measured in days, and a date alone by a day. Other
  shapes a parser might guess at (a space for the ``T``, no seconds, ``+0100``)
  are refused, so the exported JSON Schemas can say exactly what is accepted.
* Numbers and times are not coerced: ``"amount": "9.99"`` or a Unix timestamp
  for ``occurred_at`` is an error, since a publisher that sends those is likely
  sending something else wrong too. A count may be written ``2`` or ``2.0``
  (one number in JSON), never ``2.5`` or ``"2"``. Enum fields take their
  string values.
"""

from __future__ import annotations

import builtins
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    model_validator,
)
from pydantic.config import JsonDict

SCHEMA_VERSION: Literal[1] = 1  # what an event declares unless it uses a newer field
LATEST_SCHEMA_VERSION = 2

MAX_ID_CHARS = 256
NonEmptyId = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS, pattern=r"\S")]
Money = Annotated[float, Field(ge=0, allow_inf_nan=False, strict=True)]
# RFC 3339's date-time (section 5.6), from the year 1970; seconds 60 (a leap second) are not accepted.
RFC3339_PATTERN = (r"^(19[7-9][0-9]|[2-9][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt]"
                   r"([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$")
_RFC3339 = re.compile(RFC3339_PATTERN)


def _rfc3339(value: Any) -> Any:
    """Only the string form is read from JSON; a parser's guesses (Unix seconds, other shapes) are refused."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError("must be an RFC 3339 date-time with a timezone from 1970 on, e.g. 2026-01-05T12:00:00Z")
    return value


def _not_before_1970(moment: datetime) -> datetime:
    if moment < _EPOCH:
        raise ValueError("must not be before 1970-01-01T00:00:00Z")
    return moment


def _whole_number(value: Any) -> Any:
    """2.0 is the number 2 in JSON (and to JSON Schema's ``integer``); 2.5, true and "2" stay errors."""
    if isinstance(value, (str, bool)):
        raise ValueError("must be a whole number, not a string or a boolean")
    return value


# Whole numbers within bounds (the bounds first, so the exported schema states them).
Quantity = Annotated[int, Field(ge=1, le=1_000_000), BeforeValidator(_whole_number)]
Attempt = Annotated[int, Field(ge=1, le=1000), BeforeValidator(_whole_number)]
CsatScore = Annotated[int, Field(ge=1, le=5), BeforeValidator(_whole_number)]
BillingMonths = Annotated[int, Field(ge=1, le=120), BeforeValidator(_whole_number)]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EventTime = Annotated[
    AwareDatetime,
    Field(json_schema_extra={"pattern": RFC3339_PATTERN}),
    BeforeValidator(_rfc3339),
    AfterValidator(_not_before_1970),
]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code")]


def _type_required(schema: JsonDict) -> None:
    """Python callers may leave ``type`` out (each model knows its own); a JSON message must say it."""
    required = schema.get("required", [])
    schema["required"] = ["type", *(required if isinstance(required, list) else [])]


def _type_required_and(more: JsonDict) -> Callable[[JsonDict], None]:
    """``_type_required``, then a model's own additions to its schema."""
    def extra(schema: JsonDict) -> None:
        _type_required(schema)
        schema.update(more)
    return extra


class _EventBase(BaseModel):
    """Fields every event carries; ``event_id`` makes redelivery harmless."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_type_required)

    event_id: NonEmptyId = Field(description="Unique per event; a repeated id is ignored.")
    customer_id: NonEmptyId = Field(description="Also the Kafka message key.")
    occurred_at: EventTime = Field(description="Event time: an RFC 3339 date-time with a timezone (Z or an "
                                   "offset), not before 1970-01-01T00:00:00Z, and not further ahead of the "
                                   "worker's clock than the rules file's state.max_future_hours.")
    schema_version: Literal[1, 2] = Field(
        default=SCHEMA_VERSION, description="1, or 2 for the fields added in version 2.")


class UsageKind(StrEnum):
    LOGIN = "login"
    PURCHASE = "purchase"
    FEATURE_USE = "feature_use"
    SESSION = "session"
    API_CALL = "api_call"
    OTHER = "other"


class UsageEvent(_EventBase):
    """Product activity; logins and purchases drive the disengagement rule.

    ``feature`` carries the product's own name for what was done (``like``,
    ``export_report``, ...): the model learns from these names, discovered
    from the data, so a product's vocabulary need not fit a fixed list.
    """

    type: Literal["usage"] = "usage"
    kind: UsageKind
    quantity: Quantity = 1
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
    attempt: Attempt = 1

    model_config = ConfigDict(json_schema_extra=_type_required_and({
        "if": {"properties": {"status": {"const": "failed"}}, "required": ["status"]},
        "then": {"required": ["failure_reason"], "properties": {"failure_reason": {"not": {"type": "null"}}}},
    }))

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
    csat: CsatScore | None = None


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
    billing_period_months: BillingMonths | None = Field(
        default=None,
        description="Months billed at once (1 monthly, 12 annual); since schema_version 2. A move to a "
                    "longer period at a lower monthly price is a commitment, not a downgrade.",
    )

    model_config = ConfigDict(json_schema_extra=_type_required_and({
        "if": {"properties": {"billing_period_months": {"type": "integer"}}, "required": ["billing_period_months"]},
        "then": {"required": ["schema_version"], "properties": {"schema_version": {"const": 2}}},
    }))

    @model_validator(mode="after")
    def _version_has_field(self) -> SubscriptionEvent:
        if self.billing_period_months is not None and self.schema_version < 2:
            raise ValueError("billing_period_months needs schema_version 2")
        return self


class ErasureRequest(_EventBase):
    """A data-protection request: forget this customer (``churnwatch forget``).

    The worker replaces the customer's state with a marker that holds no
    facts, only when the request came (so compaction removes every older
    state from the changelog), closes the customer's open alerts, and from
    then on refuses the customer's events from before the request: a late or
    re-published old event must not rebuild what was erased. Events after it
    start a new state, as for a new customer.
    """

    type: Literal["erasure"] = "erasure"
    case_id: Annotated[str, Field(min_length=1, max_length=128)] | None = Field(
        default=None, description="The request's reference in the publisher's own records (a ticket, a case).")


Event: TypeAlias = Annotated[
    UsageEvent | PaymentEvent | TicketEvent | SubscriptionEvent | ErasureRequest,
    Field(discriminator="type"),
]



@dataclass(frozen=True, slots=True)
class EventKind:
    """One type of event in the contract: its model, its input topic and the setting that renames it.

    The one table of event types: the settings' input topics, the publisher's
    routing, the exported JSON Schemas, the compose stack's topics (checked
    by a test) and the core's fold (one function per model, checked too)
    follow it. Adding a type starts here.
    """

    type: str
    model: builtins.type[_EventBase]  # ``type`` is the field above here
    topic: str  # the default topic name
    setting: str  # the settings field (``CHURNWATCH_`` + its name in capitals) that can rename the topic


EVENT_KINDS: tuple[EventKind, ...] = (
    EventKind("usage", UsageEvent, "customer-usage", "topic_usage"),
    EventKind("payment", PaymentEvent, "payment-failures", "topic_payments"),
    EventKind("ticket", TicketEvent, "support-tickets", "topic_tickets"),
    EventKind("subscription", SubscriptionEvent, "subscriptions", "topic_subscriptions"),
    EventKind("erasure", ErasureRequest, "customer-erasures", "topic_erasures"),
)
EVENT_KIND: dict[str, EventKind] = {kind.type: kind for kind in EVENT_KINDS}
EVENT_MODELS: dict[str, type[_EventBase]] = {kind.type: kind.model for kind in EVENT_KINDS}

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def usage_name(kind: str, feature: str | None) -> str:
    """The name a usage event is counted under: its kind, and the product's own name when given.

    ``kind:feature`` keeps the kind readable from the name (the disengagement
    rule counts purchases of any feature), and two kinds that share a feature
    name stay apart.
    """
    return f"{kind}:{feature}" if feature else kind


def parse_event(raw: bytes | str) -> UsageEvent | PaymentEvent | TicketEvent | SubscriptionEvent | ErasureRequest:
    """Validate one JSON event of any type; raises ``pydantic.ValidationError``."""
    return EVENT_ADAPTER.validate_json(raw)
