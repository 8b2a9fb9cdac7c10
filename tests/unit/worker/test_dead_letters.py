"""A dead letter says where a rejected message came from and why, and fits in a Kafka message itself."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace

from churnwatch.http.metrics import Metrics
from churnwatch.schemas.dead_letter import DeadLetter, RejectReason
from churnwatch.schemas.intake import Rejection
from churnwatch.worker.changelog import Outbox
from churnwatch.worker.dead_letters import DEAD_LETTER_KEEPS, DeadLetters, dead_letter

NOW = datetime(2026, 3, 1, tzinfo=UTC)
WHY = Rejection(RejectReason.NOT_JSON, "not JSON")


def test_a_small_message_is_kept_whole() -> None:
    record = dead_letter("usage-events", 3, 41, b"acme", b"{oops", WHY, NOW)
    assert (record.source_topic, record.partition, record.offset) == ("usage-events", 3, 41)
    assert record.key_b64 == DeadLetter.encode(b"acme") and record.raw_value() == b"{oops"
    assert record.value_size is None and record.reason is RejectReason.NOT_JSON


def test_a_huge_value_is_cut_to_its_first_bytes_and_its_size_told() -> None:
    value = b"x" * (DEAD_LETTER_KEEPS + 10)
    record = dead_letter("usage-events", 0, 0, None, value, WHY, NOW)
    assert record.raw_value() == value[:DEAD_LETTER_KEEPS]
    assert record.value_size == len(value) and record.key_b64 is None


def test_sending_counts_it_keys_it_like_its_message_and_waits_in_the_outbox() -> None:
    sent: list[tuple[bytes | None, bytes]] = []

    class Topic:
        async def send(self, key: bytes | None, value: bytes) -> asyncio.Future[None]:
            sent.append((key, value))
            return asyncio.get_running_loop().create_future()

    metrics = Metrics()
    outbox = Outbox()
    message = SimpleNamespace(topic="payment-events", partition=1, offset=5, key=b"acme", value=b"[]")

    async def send() -> None:
        await DeadLetters(Topic(), metrics, outbox).send(message, WHY, NOW)

    asyncio.run(send())
    assert len(outbox) == 1  # confirmed before the message is acknowledged (the changelog writer's next write)
    assert [key for key, _ in sent] == [b"acme"]
    assert DeadLetter.model_validate_json(sent[0][1]).offset == 5
    assert metrics.dead_letters._value.get() == 1
    assert metrics.rejected.labels("not_json")._value.get() == 1
