"""Bad input on a real broker: thousands of generated messages on every input topic.

Every message is either processed (counted in the events metric) or in dead
letters with the reason the pure intake gives for it, matched by its topic,
partition and offset; the worker never stops. The generator mixes valid
events with broken JSON, wrong and missing keys, non-UTF-8 bytes, unknown
types, missing and mistyped fields, times before 1970 or far in the future,
and oversized messages.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaProducer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churnwatch.rules.engine import is_future
from churnwatch.schemas.dead_letter import DeadLetter, RejectReason
from churnwatch.schemas.intake import Rejection, decode_event
from churnwatch.settings import Settings
from churnwatch.kafka.reader import collect
from churnwatch.dev.worker_process import WorkerProcess
from tests.support.brokers import Broker
from tests.support.worker import events_consumed, running_worker

pytestmark = pytest.mark.integration

CASES = 2_000
WAIT_S = 180.0
TYPES = {"usage": "topic_usage", "payment": "topic_payments", "ticket": "topic_tickets",
         "subscription": "topic_subscriptions"}

ids = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)
@st.composite
def times(draw: st.DrawFn) -> datetime:
    """Mostly around now; some far in the future, some before 1970."""
    when = draw(st.sampled_from(["now"] * 8 + ["future", "before_1970"]))
    # Relative to the moment of publishing, and never within 5 minutes of the
    # 24-hour "future" bound: the worker judges it a moment later.
    now = datetime.now(UTC)
    if when == "now":
        seconds = draw(st.integers(-3 * 86_400, 3 * 86_400).filter(lambda s: abs(s - 86_400) > 300))
        return now + timedelta(seconds=seconds)
    if when == "future":
        return now + timedelta(days=draw(st.integers(2, 400)))
    return datetime(1970, 1, 1, tzinfo=UTC) - timedelta(days=draw(st.integers(1, 30_000)))


@st.composite
def event_dict(draw: st.DrawFn) -> dict[str, object]:
    kind = draw(st.sampled_from(sorted(TYPES)))
    body: dict[str, object] = {"type": kind, "event_id": draw(ids), "customer_id": draw(ids),
                               "occurred_at": draw(times()).isoformat()}
    if kind == "usage":
        body |= {"kind": draw(st.sampled_from(["login", "purchase", "session", "feature_use", "teleport"])),
                 "quantity": draw(st.integers(-1, 5))}
    elif kind == "payment":
        body |= {"status": draw(st.sampled_from(["failed", "succeeded"])), "invoice_id": draw(ids),
                 "amount": draw(st.floats(-1, 1e6, allow_nan=False)),
                 "currency": draw(st.sampled_from(["EUR", "USD", "eur"])),
                 "failure_reason": draw(st.sampled_from(["card_expired", "card_declined", None]))}
    elif kind == "ticket":
        body |= {"ticket_id": draw(ids), "action": draw(st.sampled_from(["opened", "closed", "lost"])),
                 "sentiment": draw(st.none() | st.floats(-1.5, 1.5, allow_nan=False))}
    else:
        body |= {"action": draw(st.sampled_from(["started", "renewed", "cancelled"])), "plan": "pro",
                 "mrr": draw(st.floats(0, 1e4, allow_nan=False))}
    # Sometimes break it: drop a field, add one, change a type.
    mutation = draw(st.sampled_from(["none"] * 7 + ["drop", "extra", "retype"]))
    field = draw(st.sampled_from(sorted(body)))
    if mutation == "drop":
        body.pop(field)
    elif mutation == "extra":
        body["surprise"] = 1
    elif mutation == "retype":
        body[field] = draw(st.sampled_from([1, "1", None, [], {}]))
    return body


@st.composite
def message(draw: st.DrawFn) -> tuple[str, bytes | None, bytes | None]:
    """(settings field of the topic, key, value)."""
    topic = draw(st.sampled_from(sorted(TYPES.values())))
    form = draw(st.sampled_from(["event"] * 6 + ["bytes", "not_utf8", "json", "oversized", "tombstone"]))
    if form == "event":
        body = draw(event_dict())
        value: bytes | None = json.dumps(body).encode()
        customer = body.get("customer_id")
        right_key = customer.encode() if isinstance(customer, str) else b"?"
        key = draw(st.sampled_from([right_key, right_key, right_key, b"someone-else", None]))
        # Events go to the topic of their type, mostly.
        if isinstance(body.get("type"), str) and body["type"] in TYPES and draw(st.booleans()):
            topic = TYPES[str(body["type"])]
        return topic, key, value
    key = draw(st.none() | st.binary(max_size=16))
    if form == "bytes":
        return topic, key, draw(st.binary(max_size=64))
    if form == "not_utf8":
        return topic, key, b'{"type": "usage", "event_id": "\xff\xfe"}'
    if form == "json":
        return topic, key, json.dumps(draw(st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=8),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
            max_leaves=8))).encode()
    if form == "oversized":
        return topic, key, b'{"type": "usage", "pad": "' + b"x" * 300_000 + b'"}'
    return topic, key or b"tombstone", None


def expected_reason(settings_: Settings, key: bytes | None, value: bytes | None) -> RejectReason | None:
    """What the pure intake says (None: a valid event, processed)."""
    decoded = decode_event(key, value, settings_.max_message_bytes)
    if isinstance(decoded, Rejection):
        return decoded.reason
    return RejectReason.FUTURE_EVENT if is_future(decoded, datetime.now(UTC)) else None


@pytest.fixture(scope="module")
def running(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, WorkerProcess]]:
    with running_worker(broker, tmp_path_factory.mktemp("fuzz")) as pair:
        yield pair


def test_every_message_is_processed_or_dead_lettered_with_its_reason(
    running: tuple[Settings, WorkerProcess],
) -> None:
    config, worker = running
    loop = asyncio.new_event_loop()

    async def start() -> AIOKafkaProducer:
        producer = AIOKafkaProducer(bootstrap_servers=config.bootstrap_servers, acks="all",
                                    max_request_size=1_048_576)
        await producer.start()
        return producer

    producer = loop.run_until_complete(start())
    sent: dict[tuple[str, int, int], RejectReason | None] = {}

    @settings(max_examples=CASES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(message())
    def publish_one(case: tuple[str, bytes | None, bytes | None]) -> None:
        field, key, value = case
        topic = getattr(config, field)
        metadata = loop.run_until_complete(producer.send_and_wait(topic, value=value, key=key))
        sent[(metadata.topic, metadata.partition, metadata.offset)] = expected_reason(config, key, value)

    try:
        publish_one()
    finally:
        loop.run_until_complete(producer.stop())
        loop.close()
    rejected = {where: reason for where, reason in sent.items() if reason is not None}
    valid = len(sent) - len(rejected)
    # About 11% of the generated messages are valid (220 of 2,000 on average; 197 seen): enough that the
    # worker must process valid events in between the bad ones, whatever the draw.
    assert len(sent) >= CASES * 0.9 and valid >= 120 and len(set(rejected.values())) >= 5, Counter(rejected.values())

    letters = asyncio.run(collect(config.bootstrap_servers, config.topic_dead_letters,
                                  lambda rs: len(rs) >= len(rejected), WAIT_S, until=worker.dead))
    got = {}
    for record in letters:
        letter = DeadLetter.model_validate_json(record.value)
        got[(letter.source_topic, letter.partition, letter.offset)] = letter
    assert {where: letter.reason for where, letter in got.items()} == rejected
    for letter in got.values():
        assert letter.error
        if letter.reason is RejectReason.TOO_LARGE:
            assert letter.value_size is not None and letter.value_size > config.max_message_bytes
    assert worker.alive(), worker.log_text()[-3000:]
    assert events_consumed(config) == valid
    print(f"{len(sent)} messages: {valid} valid, rejected {dict(Counter(r.value for r in rejected.values()))}")

