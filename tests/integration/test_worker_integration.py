"""The walking skeleton on a real broker: events in, alerts and dead letters out.

The worker runs as its own process, exactly as ``churnwatch worker`` does; the
tests talk to it only through Kafka, with plain aiokafka clients.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from churnwatch.schemas.alert import Alert
from churnwatch.schemas.dead_letter import DeadLetter
from churnwatch.schemas.events import PaymentEvent, UsageEvent
from churnwatch.kafka.publisher import EventPublisher
from churnwatch.settings import Settings
from churnwatch.kafka.reader import collect
from churnwatch.dev.worker_process import WorkerProcess
from tests.support.brokers import Broker
from tests.support.worker import running_worker

pytestmark = pytest.mark.integration

WAIT_S = 90.0
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def running(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, WorkerProcess]]:
    with running_worker(broker, tmp_path_factory.mktemp("worker")) as pair:
        yield pair


async def _publish(settings: Settings, *messages: tuple[str, bytes | None, bytes]) -> None:
    async with EventPublisher(settings) as publisher:
        for topic, key, value in messages:
            await publisher.publish_raw(topic, key, value)


def _read(settings: Settings, topic: str, done, worker: WorkerProcess) -> list:
    return asyncio.run(collect(settings.bootstrap_servers, topic, done, WAIT_S, until=worker.dead))


def test_failed_payment_becomes_an_alert(running: tuple[Settings, WorkerProcess]) -> None:
    settings, worker = running
    event = PaymentEvent(
        event_id="pay-it-1", customer_id="cust-pay", occurred_at=T0, status="failed",
        invoice_id="inv-1", amount=99.5, currency="EUR", failure_reason="card_expired",
    )

    async def publish() -> None:
        async with EventPublisher(settings) as publisher:
            await publisher.publish(event)

    asyncio.run(publish())
    records = _read(settings, settings.topic_alerts,
                    lambda rs: any(r.key == b"cust-pay" for r in rs), worker)
    mine = [Alert.model_validate_json(r.value) for r in records if r.key == b"cust-pay"]
    assert len(mine) == 1, worker.log_text()[-3000:]
    alert = mine[0]
    assert alert.customer_id == "cust-pay"
    assert alert.rule == "payment_failure"
    assert alert.status == "firing"
    assert alert.severity == "high"  # card_expired needs the customer to act
    assert alert.triggered_at == T0
    assert alert.evidence["last_invoice_id"] == "inv-1"
    assert alert.evidence["last_failure_reason"] == "card_expired"
    assert "update" in alert.recommended_action
    # Deterministic: the id is a function of the input, not of the run.
    from churnwatch.rules.alert_ids import alert_id

    assert alert.alert_id == alert_id("cust-pay", alert.rule, "pay-it-1")


def test_an_event_from_the_far_future_goes_to_dead_letters(running: tuple[Settings, WorkerProcess]) -> None:
    settings, worker = running
    event = UsageEvent(event_id="future-1", customer_id="cust-future",
                       occurred_at=datetime(2100, 1, 1, tzinfo=UTC), kind="login")
    asyncio.run(_publish(settings, (settings.topic_usage, b"cust-future", event.model_dump_json().encode())))
    letters = _read(settings, settings.topic_dead_letters,
                    lambda rs: any(r.key == b"cust-future" for r in rs), worker)
    mine = [DeadLetter.model_validate_json(r.value) for r in letters if r.key == b"cust-future"]
    assert [d.reason for d in mine] == ["future_event"]
    assert "2100-01-01" in mine[0].error


def test_bad_messages_go_to_dead_letters_and_the_worker_goes_on(
    running: tuple[Settings, WorkerProcess],
) -> None:
    settings, worker = running
    not_json = b"{this is not json"
    unknown_type = json.dumps({"type": "refund", "event_id": "r-1", "customer_id": "cust-dl"}).encode()
    invalid = json.dumps({
        "type": "payment", "event_id": "bad-1", "customer_id": "cust-dl",
        "occurred_at": "2026-03-02T10:00:00",  # no timezone
        "status": "failed", "invoice_id": "inv-9", "amount": -5, "currency": "EUR",
        "failure_reason": "card_expired",
    }).encode()
    after = PaymentEvent(
        event_id="pay-after-bad", customer_id="cust-dl", occurred_at=T0, status="failed",
        invoice_id="inv-10", amount=10.0, currency="EUR", failure_reason="card_declined",
    )
    asyncio.run(_publish(
        settings,
        (settings.topic_payments, b"cust-dl", not_json),
        (settings.topic_payments, b"cust-dl", invalid),
        (settings.topic_payments, b"cust-dl", unknown_type),
        (settings.topic_payments, b"cust-dl", after.model_dump_json().encode()),
    ))

    def three_of_mine(records: list) -> bool:
        return sum(r.key == b"cust-dl" for r in records) >= 3

    letters = _read(settings, settings.topic_dead_letters, three_of_mine, worker)
    records = [DeadLetter.model_validate_json(r.value) for r in letters if r.key == b"cust-dl"]
    by_value = {r.raw_value(): r for r in records}
    assert set(by_value) == {not_json, invalid, unknown_type}, records
    assert by_value[not_json].reason == "not_json"
    assert by_value[unknown_type].reason == "unknown_type"
    assert "refund" in by_value[unknown_type].error
    assert by_value[invalid].reason == "invalid_schema"
    assert "occurred_at" in by_value[invalid].error and "timezone" in by_value[invalid].error
    assert "amount" in by_value[invalid].error
    for record in records:
        assert record.source_topic == settings.topic_payments
        assert record.key_b64 == base64.b64encode(b"cust-dl").decode()
        assert record.offset >= 0 and 0 <= record.partition < settings.partitions

    alerts = _read(settings, settings.topic_alerts,
                   lambda rs: any(r.key == b"cust-dl" for r in rs), worker)
    mine = [Alert.model_validate_json(r.value) for r in alerts if r.key == b"cust-dl"]
    assert [a.evidence["last_invoice_id"] for a in mine] == ["inv-10"]
    assert worker.alive()


def test_event_keyed_by_another_customer_is_refused(running: tuple[Settings, WorkerProcess]) -> None:
    """The key picks the partition and so the state's home: it must be the customer id."""
    settings, worker = running
    usage = UsageEvent(event_id="login-km", customer_id="cust-km", occurred_at=T0, kind="login")
    asyncio.run(_publish(settings, (settings.topic_usage, b"someone-else", usage.model_dump_json().encode())))
    letters = _read(settings, settings.topic_dead_letters,
                    lambda rs: any(r.key == b"someone-else" for r in rs), worker)
    mine = [DeadLetter.model_validate_json(r.value) for r in letters if r.key == b"someone-else"]
    assert [(d.reason, d.source_topic) for d in mine] == [("key_mismatch", settings.topic_usage)]
    assert "cust-km" in mine[0].error


def test_a_burst_of_one_customer_is_written_to_the_changelog_once_per_batch(
    running: tuple[Settings, WorkerProcess],
) -> None:
    from datetime import timedelta

    from churnwatch.rules import CustomerState
    from churnwatch.worker.app import STATE_TABLE

    settings, worker = running
    burst = [UsageEvent(event_id=f"burst-{n}", customer_id="cust-burst",
                        occurred_at=T0 + timedelta(minutes=n), kind="session") for n in range(300)]
    asyncio.run(_publish(settings, *((settings.topic_usage, b"cust-burst", e.model_dump_json().encode())
                                     for e in burst)))
    changelog = f"{settings.app_id}-{STATE_TABLE}-changelog"

    def sessions(record) -> int:
        state = CustomerState.from_bytes(record.value)
        return sum(kinds.get("session", 0) for kinds in state.activity.values())

    def mine(records):
        return [r for r in records if r.key == b'"cust-burst"']

    records = mine(_read(settings, changelog, lambda rs: any(sessions(r) == 300 for r in mine(rs)), worker))
    assert records and sessions(records[-1]) == 300, worker.log_text()[-3000:]
    # Published in one go, the burst is read in batches of many events each.
    assert len(records) < len(burst) / 5, f"{len(records)} changelog writes for {len(burst)} events"
