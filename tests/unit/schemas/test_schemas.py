"""Unit tests of the event contracts and of the intake classification."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from churnwatch.schemas.dead_letter import RejectReason
from churnwatch.schemas.events import PaymentEvent, SubscriptionEvent, TicketEvent, UsageEvent, parse_event
from churnwatch.schemas.intake import Rejection, decode_event

BASE = {"event_id": "e-1", "customer_id": "c-1", "occurred_at": "2026-01-05T12:00:00Z"}
VALID = {
    "usage": {**BASE, "type": "usage", "kind": "purchase", "quantity": 2, "amount": 9.5, "currency": "EUR"},
    "payment": {**BASE, "type": "payment", "status": "failed", "invoice_id": "i-1", "amount": 20,
                "currency": "USD", "failure_reason": "card_expired", "attempt": 2},
    "ticket": {**BASE, "type": "ticket", "ticket_id": "t-1", "action": "opened", "priority": "urgent",
               "category": "cancellation_request", "sentiment": -0.8, "csat": 1},
    "subscription": {**BASE, "type": "subscription", "action": "plan_changed", "plan": "basic",
                     "mrr": 49.0, "previous_mrr": 99.0, "renews_at": "2026-02-05T00:00:00+01:00"},
}
MODELS = {"usage": UsageEvent, "payment": PaymentEvent, "ticket": TicketEvent,
          "subscription": SubscriptionEvent}


def _json(doc: dict[str, object]) -> bytes:
    return json.dumps(doc).encode()


@pytest.mark.parametrize("kind", sorted(VALID))
def test_each_type_parses_through_the_discriminated_union(kind: str) -> None:
    event = parse_event(_json(VALID[kind]))
    assert type(event) is MODELS[kind]
    assert event.occurred_at == datetime(2026, 1, 5, 12, tzinfo=UTC)
    assert event.schema_version == 1


def test_a_mixed_jsonl_file_validates_line_by_line() -> None:
    lines = [_json(VALID[k]) for k in ("usage", "payment", "ticket", "subscription", "usage")]
    assert [parse_event(line).type for line in lines] == ["usage", "payment", "ticket", "subscription", "usage"]


def test_round_trip_is_lossless() -> None:
    for doc in VALID.values():
        event = parse_event(_json(doc))
        assert parse_event(event.model_dump_json()) == event


@pytest.mark.parametrize(
    ("kind", "change", "field"),
    [
        ("usage", {"occurred_at": "2026-01-05T12:00:00"}, "occurred_at"),  # naive time
        ("usage", {"occurred_at": 1767614400}, "occurred_at"),  # epoch number, not RFC 3339
        ("usage", {"event_id": ""}, "event_id"),
        ("usage", {"customer_id": "   "}, "customer_id"),
        ("usage", {"kind": "teleport"}, "kind"),
        ("usage", {"quantity": "2"}, "quantity"),  # no coercion from strings
        ("usage", {"quantity": 0}, "quantity"),
        ("usage", {"amount": -0.01}, "amount"),
        ("usage", {"currency": "euro"}, "currency"),
        ("usage", {"colour": "red"}, "colour"),  # unknown fields are rejected
        ("usage", {"schema_version": 3}, "schema_version"),
        ("subscription", {"billing_period_months": 12}, "billing_period_months"),  # needs version 2
        ("subscription", {"schema_version": 2, "billing_period_months": 0}, "billing_period_months"),
        ("payment", {"amount": -1}, "amount"),
        ("payment", {"failure_reason": "bad_luck"}, "failure_reason"),
        ("payment", {"status": "pending"}, "status"),
        ("ticket", {"sentiment": 1.5}, "sentiment"),
        ("ticket", {"sentiment": -1.01}, "sentiment"),
        ("ticket", {"csat": 6}, "csat"),
        ("ticket", {"priority": "whenever"}, "priority"),
        ("subscription", {"mrr": -5}, "mrr"),
        ("subscription", {"renews_at": "2026-02-05"}, "renews_at"),
    ],
)
def test_invalid_fields_are_named_in_the_error(kind: str, change: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_event(_json({**VALID[kind], **change}))
    assert field in str(info.value)


def test_a_failed_payment_needs_a_reason() -> None:
    doc = {k: v for k, v in VALID["payment"].items() if k != "failure_reason"}
    with pytest.raises(ValidationError, match="failure_reason is required"):
        parse_event(_json(doc))
    parse_event(_json({**doc, "status": "succeeded"}))  # a success needs none


def test_sentiment_bounds_are_inclusive() -> None:
    for value in (-1, 1, 0.0):
        assert parse_event(_json({**VALID["ticket"], "sentiment": value})).sentiment == value


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"{not json", RejectReason.NOT_JSON),
        (b"\xff\xfe\x00garbage", RejectReason.NOT_JSON),
        (None, RejectReason.NOT_JSON),
        (b'{"type": "refund"}', RejectReason.UNKNOWN_TYPE),
        (b'{"event_id": "x"}', RejectReason.UNKNOWN_TYPE),
        (b"[1, 2]", RejectReason.INVALID_SCHEMA),
        (_json({**VALID["usage"], "quantity": -3}), RejectReason.INVALID_SCHEMA),
    ],
)
def test_intake_names_the_reason(value: bytes | None, reason: RejectReason) -> None:
    result = decode_event(b"c-1", value)
    assert isinstance(result, Rejection)
    assert result.reason is reason
    assert result.error


def test_intake_requires_the_customer_id_as_key() -> None:
    value = _json(VALID["usage"])
    assert isinstance(decode_event(b"c-1", value), UsageEvent)
    for key in (None, b"c-2", b"C-1"):
        result = decode_event(key, value)
        assert isinstance(result, Rejection) and result.reason is RejectReason.KEY_MISMATCH


@given(st.binary(max_size=256))
def test_intake_never_raises_on_arbitrary_bytes(value: bytes) -> None:
    result = decode_event(b"c-1", value)
    assert isinstance(result, Rejection | UsageEvent | PaymentEvent | TicketEvent | SubscriptionEvent)


def test_event_times_before_1970_are_invalid() -> None:
    value = json.dumps({"type": "usage", "event_id": "e", "customer_id": "c-1",
                        "occurred_at": "1969-12-31T23:59:59Z", "kind": "login"}).encode()
    result = decode_event(b"c-1", value)
    assert isinstance(result, Rejection) and result.reason is RejectReason.INVALID_SCHEMA
    assert "occurred_at" in result.error and "1970" in result.error


def test_a_message_over_the_limit_is_refused_unread() -> None:
    value = b'{"type": "usage", "pad": "' + b"x" * 2000 + b'"}'
    result = decode_event(b"c-1", value, max_bytes=1024)
    assert isinstance(result, Rejection) and result.reason is RejectReason.TOO_LARGE
    assert f"{len(value):,} bytes" in result.error
    at_the_limit = decode_event(b"c-1", value, max_bytes=len(value))  # read, and invalid for other reasons
    assert isinstance(at_the_limit, Rejection) and at_the_limit.reason is RejectReason.INVALID_SCHEMA
