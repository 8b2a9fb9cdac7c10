"""``churnwatch demo``: broker, worker, a handful of customers, alerts read back.

Starts what it needs (the embedded broker unless ``--broker`` is given, and a
worker process), publishes a short scripted story, prints every alert as it
arrives on the alerts topic, and stops everything it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from schemas.alert import Alert
from schemas.events import Event, PaymentEvent, SubscriptionEvent, UsageEvent
from stream_app.embedded_broker import WORKER_TUNING, EmbeddedBroker, free_port
from stream_app.publisher import EventPublisher
from stream_app.settings import Settings
from stream_app.topic_reader import follow
from stream_app.topics import ensure_topics
from stream_app.worker_process import WorkerProcess


def story(start: datetime) -> list[Event]:
    """A few customers' week: most are fine, three payments fail."""
    events: list[Event] = []
    plans = {"acme": 1200.0, "globex": 300.0, "initech": 49.0, "umbrella": 4800.0}
    for i, (customer, mrr) in enumerate(plans.items()):
        events.append(SubscriptionEvent(
            event_id=f"{customer}-sub", customer_id=customer, occurred_at=start + timedelta(hours=i),
            action="started", plan="pro", mrr=mrr,
        ))
        for day in range(3):
            events.append(UsageEvent(
                event_id=f"{customer}-login-{day}", customer_id=customer,
                occurred_at=start + timedelta(days=day, hours=9 + i), kind="login",
            ))
    failures = [("acme", "card_expired"), ("globex", "insufficient_funds"), ("umbrella", "card_declined")]
    for n, (customer, reason) in enumerate(failures):
        events.append(PaymentEvent(
            event_id=f"{customer}-pay-1", customer_id=customer,
            occurred_at=start + timedelta(days=4, hours=n), status="failed",
            invoice_id=f"inv-{customer}-1", amount=plans[customer], currency="EUR",
            failure_reason=reason,
        ))
    events.append(PaymentEvent(
        event_id="initech-pay-1", customer_id="initech", occurred_at=start + timedelta(days=4),
        status="succeeded", invoice_id="inv-initech-1", amount=49.0, currency="EUR",
    ))
    return events


def _format_alert(alert: Alert) -> str:
    return (
        f"  ALERT {alert.severity.value:<8} p{alert.priority:<3} {alert.customer_id:<10} "
        f"{alert.rule.value:<16} {alert.reasons[0]}\n"
        f"        -> {alert.recommended_action}"
    )


@contextlib.contextmanager
def _broker(bootstrap: str | None) -> Iterator[tuple[str, dict[str, str]]]:
    if bootstrap:
        yield bootstrap, {}
        return
    with EmbeddedBroker() as broker:
        print(f"embedded Kafka-protocol broker (Tansu) on {broker.bootstrap_servers}, pid {broker.pid}")
        yield broker.bootstrap_servers, WORKER_TUNING


async def _publish_and_watch(
    settings: Settings, events: list[Event], worker: WorkerProcess, timeout_s: float
) -> int:
    expected = sum(1 for e in events if isinstance(e, PaymentEvent) and e.status == "failed")
    async with EventPublisher(settings) as publisher:
        for event in events:
            await publisher.publish(event)
        # One message no publisher should send, to show the dead-letter path.
        await publisher.publish_raw(settings.topic_usage, b"acme", b"{not json")
    print(f"published {len(events)} events and 1 malformed message; waiting for alerts ...")
    seen = 0
    records = follow(settings.bootstrap_servers, settings.topic_alerts, timeout_s, until=worker.dead)
    async for record in records:
        print(_format_alert(Alert.model_validate_json(record.value or b"")))
        seen += 1
        if seen >= expected:
            break
    return seen
    return seen


def run_demo(bootstrap: str | None = None, timeout_s: float = 90.0) -> int:
    started = time.monotonic()
    with _broker(bootstrap) as (servers, tuning), tempfile.TemporaryDirectory() as tmp:
        run_id = uuid.uuid4().hex[:8]
        settings = Settings(
            bootstrap_servers=servers,
            app_id=f"churnwatch-demo-{run_id}",
            data_dir=Path(tmp) / "data",
            web_port=free_port(),
        )
        asyncio.run(ensure_topics(settings))
        worker = WorkerProcess(settings, Path(tmp) / "worker.log", tuning)
        with worker:
            print(f"worker started, pid {worker.pid}, app id {settings.app_id}")
            start = datetime(2026, 1, 5, tzinfo=UTC)
            seen = asyncio.run(_publish_and_watch(settings, story(start), worker, timeout_s))
            alive = worker.alive()
        code = worker.process.returncode if worker.process else None
        if not alive or seen == 0:
            print(worker.log_text()[-4000:])
    print(f"{seen} alerts read back from '{settings.topic_alerts}' in {time.monotonic() - started:.1f}s;"
          f" worker stopped (exit {code}), broker stopped")
    return 0 if seen > 0 and alive else 1
