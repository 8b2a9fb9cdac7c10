"""A Kafka client no one here wrote: librdkafka (``confluent-kafka``) publishes and follows.

What a backend service in another stack does: publish JSON events keyed by
``customer_id`` with the Java-compatible partitioner, then follow the alerts
and the dead letters. Runs on the broker of the test run, Apache Kafka or the
embedded one (librdkafka 2.16 reads both; Debian's kcat, on librdkafka 2.0,
cannot read the embedded broker's ApiVersions reply).
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer

from churnwatch.schemas.alert import Alert
from churnwatch.schemas.dead_letter import DeadLetter
from tests.support.brokers import Broker
from tests.support.worker import running_worker

pytestmark = pytest.mark.integration

WAIT_S = 90.0


def _follow(bootstrap: str, topic: str, found, timeout_s: float = WAIT_S) -> list[bytes]:
    """Read ``topic`` from the start with librdkafka until ``found(values)`` or the time is up."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"follower-{uuid.uuid4().hex[:8]}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not found(values):
            message = consumer.poll(0.5)
            if message is not None and message.error() is None and message.value() is not None:
                values.append(message.value())
    finally:
        consumer.close()
    return values


def test_librdkafka_publishes_events_and_reads_alerts_and_dead_letters(broker: Broker, tmp_path: Path) -> None:
    with running_worker(broker, tmp_path) as (settings, worker):
        producer = Producer({"bootstrap.servers": settings.bootstrap_servers, "partitioner": "murmur2_random",
                             "acks": "all"})
        at = datetime.now(UTC) - timedelta(hours=1)
        payment = {"type": "payment", "event_id": "rd-pay-1", "customer_id": "rd-acme",
                   "occurred_at": at.isoformat(), "status": "failed", "invoice_id": "inv-1", "amount": 99.0,
                   "currency": "EUR", "failure_reason": "card_expired"}
        producer.produce(settings.topic_payments, key=b"rd-acme", value=json.dumps(payment).encode())
        producer.produce(settings.topic_payments, key=b"rd-acme", value=b'{"type": "payment", broken')
        assert producer.flush(30) == 0

        alerts = _follow(settings.bootstrap_servers, settings.topic_alerts,
                         lambda values: any(b"rd-acme" in v for v in values))
        (alert,) = [Alert.model_validate_json(v) for v in alerts if b"rd-acme" in v]
        assert (alert.rule, alert.status, alert.severity) == ("payment_failure", "firing", "high")
        letters = _follow(settings.bootstrap_servers, settings.topic_dead_letters, lambda values: bool(values))
        (letter,) = [DeadLetter.model_validate_json(v) for v in letters]
        assert letter.reason == "not_json" and letter.source_topic == settings.topic_payments
        assert worker.alive(), worker.log_text()[-3000:]
