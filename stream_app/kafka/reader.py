"""Following an output topic from its start, bounded in time.

Used by the demo to show alerts as they arrive and by the tests to read what
the worker wrote; no consumer group, so it never disturbs the worker's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

from aiokafka import AIOKafkaConsumer, ConsumerRecord


async def follow(
    bootstrap_servers: str,
    topic: str | tuple[str, ...],
    timeout_s: float,
    until: Callable[[], bool] | None = None,
) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
    """Yield the records of a topic (or of several, interleaved) from the earliest offset.

    Stops when ``timeout_s`` has passed or ``until()`` turns true (checked about
    twice a second), e.g. when the process that should write the topic died.
    """
    consumer = AIOKafkaConsumer(
        *((topic,) if isinstance(topic, str) else topic),
        bootstrap_servers=bootstrap_servers,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    deadline = time.monotonic() + timeout_s
    await asyncio.wait_for(consumer.start(), timeout_s)
    try:
        while (remaining := deadline - time.monotonic()) > 0 and not (until and until()):
            batches = await consumer.getmany(timeout_ms=int(min(remaining, 0.5) * 1000))
            for records in batches.values():
                for record in records:
                    yield record
    finally:
        await consumer.stop()


async def collect(
    bootstrap_servers: str,
    topic: str,
    done: Callable[[list[ConsumerRecord[bytes, bytes]]], bool],
    timeout_s: float,
    until: Callable[[], bool] | None = None,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read the topic until ``done(records so far)`` holds; returns what was read.

    The caller checks ``done`` again on the result: a timeout returns early
    with whatever had arrived, so that a failing test can show it.
    """
    records: list[ConsumerRecord[bytes, bytes]] = []
    async for record in follow(bootstrap_servers, topic, timeout_s, until):
        records.append(record)
        if done(records):
            break
    return records
