"""The Faust shell: topics, the state table and the agent that feeds the core.

Everything here moves bytes in and out; decisions are made by
``schemas.intake.decode_event`` and ``rules.apply_event``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import faust
from faust.types import EventT

from rules import CustomerState, apply_event
from schemas.dead_letter import DeadLetter
from schemas.intake import Rejection, decode_event
from stream_app.settings import Settings

log = logging.getLogger(__name__)

STATE_TABLE = "customer-state"
_RAW_BYTES: dict[str, Any] = {
    "key_type": bytes,
    "value_type": bytes,
    "key_serializer": "raw",
    "value_serializer": "raw",
}


def build_app(settings: Settings) -> faust.App:
    """A Faust app for these settings; built per process, so tests can run several."""
    app = faust.App(
        settings.app_id,
        broker=settings.faust_broker_url,
        store=settings.store,
        datadir=str(settings.data_dir),
        autodiscover=False,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
        broker_rebalance_timeout=settings.rebalance_timeout_s,
        producer_max_batch_size=settings.producer_max_batch_size,
        web_enabled=True,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
    )
    inputs = app.topic(*settings.input_topics, partitions=settings.partitions, **_RAW_BYTES)
    alerts = app.topic(settings.topic_alerts, **_RAW_BYTES)
    dead_letters = app.topic(settings.topic_dead_letters, **_RAW_BYTES)
    table = app.Table(
        STATE_TABLE,
        default=None,
        partitions=settings.partitions,
        key_type=str,  # JSON-encoded customer id in the changelog
        value_type=bytes,  # CustomerState.to_bytes(), raw
    )

    async def process(stream: faust.StreamT[bytes]) -> None:
        async for message_event in stream.events():
            await _handle(message_event, table, alerts, dead_letters)

    app.agent(inputs, name="churnwatch.process")(process)
    return app


async def _handle(
    message_event: EventT[bytes],
    table: faust.Table,
    alerts: faust.TopicT,
    dead_letters: faust.TopicT,
) -> None:
    message = message_event.message
    decoded = decode_event(message.key, message.value)
    if isinstance(decoded, Rejection):
        record = DeadLetter(
            source_topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key_b64=DeadLetter.encode(message.key),
            value_b64=DeadLetter.encode(message.value),
            reason=decoded.reason,
            error=decoded.error,
            rejected_at=datetime.now(UTC),
        )
        log.warning(
            "rejected %s[%d]@%d: %s: %s",
            message.topic, message.partition, message.offset, decoded.reason, decoded.error,
        )
        await dead_letters.send(key=message.key, value=record.model_dump_json().encode())
        return
    raw_state = table.get(decoded.customer_id)
    state = CustomerState.from_bytes(raw_state) if raw_state is not None else None
    transition = apply_event(state, decoded, now=decoded.occurred_at)
    table[decoded.customer_id] = transition.state.to_bytes()
    for alert in transition.alerts:
        await alerts.send(key=alert.customer_id.encode(), value=alert.model_dump_json().encode())
