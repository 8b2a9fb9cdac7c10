"""Turning one raw Kafka message into a validated event or a reasoned rejection.

Pure: the worker and the offline replay both call it, and every rejection
names a reason that the dead-letter record and the metrics carry.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from churnwatch.schemas.dead_letter import RejectReason
from churnwatch.schemas.events import EVENT_ADAPTER, Event

MAX_ERROR_CHARS = 2000
_UNKNOWN_TYPE_ERRORS = frozenset({"union_tag_invalid", "union_tag_not_found"})


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: RejectReason
    error: str


def describe(exc: ValidationError) -> str:
    """One line per problem, ``field.path: message``, short enough for a log line."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in err["loc"]) or "(message)"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)[:MAX_ERROR_CHARS]


def too_large(value: bytes | None, max_bytes: int | None) -> Rejection | None:
    """A value over ``max_bytes``, refused unread (None: not too large, or no limit)."""
    if max_bytes is not None and value is not None and len(value) > max_bytes:
        return Rejection(RejectReason.TOO_LARGE, f"message of {len(value):,} bytes; at most {max_bytes:,} are read")
    return None


def validate_event(value: bytes | str | None) -> Event | Rejection:
    """Validate one JSON event (a message value or a line of an event file)."""
    if value is None:
        return Rejection(RejectReason.NOT_JSON, "message has no value (tombstone)")
    try:
        event = EVENT_ADAPTER.validate_json(value)
    except ValidationError as exc:
        kinds = {err["type"] for err in exc.errors(include_url=False, include_input=False)}
        if "json_invalid" in kinds or "json_type" in kinds:
            return Rejection(RejectReason.NOT_JSON, describe(exc))
        if kinds & _UNKNOWN_TYPE_ERRORS:
            return Rejection(RejectReason.UNKNOWN_TYPE, describe(exc))
        return Rejection(RejectReason.INVALID_SCHEMA, describe(exc))
    return event


def decode_event(key: bytes | None, value: bytes | None, max_bytes: int | None = None) -> Event | Rejection:
    """Validate the value and check that the message key is the customer id.

    The key decides the partition and so which worker holds the customer's
    state; an event keyed otherwise would split that state, so it is refused.
    A value over ``max_bytes`` is refused unread: no event needs that much,
    and parsing it would cost every other customer's latency.
    """
    if (refused := too_large(value, max_bytes)) is not None:
        return refused
    event = validate_event(value)
    if isinstance(event, Rejection):
        return event
    expected = event.customer_id.encode()
    if key != expected:
        shown = "no key" if key is None else f"key {key[:80]!r}"
        return Rejection(
            RejectReason.KEY_MISMATCH,
            f"message has {shown}; events must be keyed by customer_id {event.customer_id!r}",
        )
    return event
