"""Rejected messages, kept whole enough to be replayed: nothing a publisher sends is lost.

A dead letter carries where the message came from (topic, partition,
offset), its key and value (base64) and why it was rejected. It must fit in a
Kafka message itself, so a huge value is cut to its first bytes; the whole
stays in its source topic, at the offset the dead letter names.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from churnwatch.http.metrics import Metrics
from churnwatch.logs import RejectionLog
from churnwatch.schemas.dead_letter import DeadLetter
from churnwatch.schemas.intake import Rejection
from churnwatch.worker.changelog import Outbox

log = logging.getLogger(__name__)

DEAD_LETTER_KEEPS = 262_144  # bytes of a rejected key or value copied into its dead letter


def bounded(raw: bytes | None) -> bytes | None:
    """All of a rejected key or value, or its first ``DEAD_LETTER_KEEPS`` bytes."""
    return raw if raw is None or len(raw) <= DEAD_LETTER_KEEPS else raw[:DEAD_LETTER_KEEPS]


def dead_letter(topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None,
                rejection: Rejection, rejected_at: datetime) -> DeadLetter:
    kept = bounded(value)
    return DeadLetter(
        source_topic=topic,
        partition=partition,
        offset=offset,
        key_b64=DeadLetter.encode(bounded(key)),
        value_b64=DeadLetter.encode(kept),
        value_size=None if kept is value else len(value or b""),
        reason=rejection.reason,
        error=rejection.error,
        rejected_at=rejected_at,
    )


class DeadLetters:
    """Sends a rejected message's dead letter, counts it and logs why (a few a minute, then a count)."""

    def __init__(self, topic: Any, metrics: Metrics, outbox: Outbox) -> None:
        """``topic``: the dead-letter topic (anything with an async ``send(key=, value=)``); sent through
        ``outbox``, so a rejected message is acknowledged only once its dead letter is confirmed."""
        self.topic = topic
        self.metrics = metrics
        self.outbox = outbox
        self.log = RejectionLog(log)

    async def send(self, message: Any, rejection: Rejection, now: datetime) -> None:
        """``message``: the Kafka message (topic, partition, offset, key, value)."""
        record = dead_letter(message.topic, message.partition, message.offset, message.key, message.value,
                             rejection, now)
        self.log.rejected(f"{message.topic}[{message.partition}]@{message.offset}", rejection)
        self.metrics.rejected.labels(rejection.reason.value).inc()
        self.metrics.dead_letters.inc()
        await self.outbox.send(self.topic, key=message.key, value=record.model_dump_json().encode())
