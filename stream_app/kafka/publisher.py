"""The publish helper for backend services: the right topic, key and bytes.

Events must be keyed by ``customer_id`` (the worker rejects anything else), and
each event type has its own topic; this helper gets both right.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from types import TracebackType

from aiokafka import AIOKafkaProducer

from churnwatch.schemas.events import Event
from churnwatch.schemas.intake import Rejection
from churnwatch.kafka.security import aiokafka_options
from churnwatch.settings import Settings


def encode(event: Event) -> tuple[bytes, bytes]:
    """(key, value) as the worker expects them: UTF-8 customer id, JSON body."""
    return event.customer_id.encode(), event.model_dump_json(exclude_none=True).encode()


def make_producer(settings: Settings, **options: object) -> AIOKafkaProducer:
    """A producer for churnwatch's topics: every replica acknowledges, security from the settings."""
    return AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all", **aiokafka_options(settings),
                            **options)


class EventPublisher:
    """``async with EventPublisher(settings) as pub: await pub.publish(event)``."""

    def __init__(self, settings: Settings, **producer_options: object) -> None:
        self.settings = settings
        self.producer = make_producer(settings, **producer_options)

    async def publish(self, event: Event) -> None:
        key, value = encode(event)
        await self.producer.send_and_wait(self.settings.topic_for(event.type), value=value, key=key)

    async def publish_raw(self, topic: str, key: bytes | None, value: bytes | None,
                          partition: int | None = None) -> None:
        await self.producer.send_and_wait(topic, value=value, key=key, partition=partition)

    async def __aenter__(self) -> EventPublisher:
        await self.producer.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.producer.stop()


async def publish_file(settings: Settings, events: Iterable[Event | Rejection], window: int = 2000) -> int:
    """Publish the events among ``events`` (a rejected line is skipped: it was counted); how many.

    Sent in windows of ``window`` unacknowledged messages: one round trip
    per event would make a large file take minutes.
    """
    producer = make_producer(settings, linger_ms=5)
    await producer.start()
    sent = 0
    pending: list[asyncio.Future[object]] = []
    try:
        for event in events:
            if isinstance(event, Rejection):
                continue
            key, value = encode(event)
            pending.append(await producer.send(settings.topic_for(event.type), value=value, key=key))
            sent += 1
            if len(pending) >= window:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


async def publish_paced(
    settings: Settings,
    events: Iterable[Event],
    start: datetime,
    days_per_second: float,
    on_day: Callable[[float], None] | None = None,
) -> tuple[int, float]:
    """Publish time-ordered events in compressed time: ``days_per_second`` of event
    time per wall second (counted from ``start``). Returns (events sent, seconds).

    Batches go out between pauses, so a fast pace is limited by the broker, not
    by one round trip per event.
    """
    producer = make_producer(settings, linger_ms=5)
    await producer.start()
    sent = 0
    began = time.monotonic()
    try:
        for event in events:
            day = max(0.0, (event.occurred_at - start) / timedelta(days=1))
            lead = day / days_per_second - (time.monotonic() - began)
            if lead > 0:
                await producer.flush()
                if on_day is not None:
                    on_day(day)
                await asyncio.sleep(lead)
            key, value = encode(event)
            await producer.send(settings.topic_for(event.type), value=value, key=key)
            sent += 1
        await producer.flush()
    finally:
        await producer.stop()
    return sent, time.monotonic() - began
