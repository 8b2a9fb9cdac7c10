"""``churnwatch demo``: broker, worker, a small customer base, alerts as they arrive.

Starts what it needs (the embedded broker unless ``--broker`` is given, and a
worker process on the event clock), publishes the story in
``stream_app.demo_story`` as fast as the broker takes it, prints every alert
read back from the alerts topic, and checks the alert ids against an offline
replay of the same story. It stops everything it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from rules import RulesConfig
from schemas.alert import Alert
from schemas.events import Event
from stream_app.demo_story import story
from stream_app.embedded_broker import WORKER_TUNING, EmbeddedBroker, free_port
from stream_app.publisher import EventPublisher
from stream_app.replay import replay_lines
from stream_app.settings import Settings
from stream_app.topic_reader import follow
from stream_app.topics import ensure_topics
from stream_app.worker_process import WorkerProcess


def format_alert(alert: Alert) -> str:
    return (
        f"  {alert.triggered_at:%Y-%m-%d} {alert.status.value.upper():<8} {alert.severity.value:<8} "
        f"p{alert.priority:<3} {alert.customer_id:<9} {alert.rule.value:<16} {alert.reasons[0]}"
        + ("" if alert.status == "resolved" else f"\n{'':>14}-> {alert.recommended_action}")
    )


def expected_alerts(events: list[Event], rules: RulesConfig) -> list[Alert]:
    """What the same core says offline: the demo's yardstick."""
    alerts: list[Alert] = []
    replay_lines((e.model_dump_json() for e in events), rules, alerts.append)
    return alerts


def episode_changes(alerts: list[Alert]) -> set[tuple[str, str]]:
    """(alert id, firing|resolved) pairs: what any run must agree on.

    Escalation steps may differ: the worker's sweep runs every few wall
    seconds, so in compressed time it may find a customer already critical
    where the replay, sweeping at exact due times, saw high first.
    """
    return {(a.alert_id, a.status.value) for a in alerts}


@contextlib.contextmanager
def _broker(bootstrap: str | None) -> Iterator[tuple[str, dict[str, str]]]:
    if bootstrap:
        yield bootstrap, {}
        return
    with EmbeddedBroker() as broker:
        print(f"embedded Kafka-protocol broker (Tansu) on {broker.bootstrap_servers}, pid {broker.pid}")
        yield broker.bootstrap_servers, WORKER_TUNING


async def _publish_and_watch(
    settings: Settings, events: list[Event], expected: set[tuple[str, str]],
    worker: WorkerProcess, timeout_s: float,
) -> list[Alert]:
    async with EventPublisher(settings) as publisher:
        for event in events:
            await publisher.publish(event)
        # One message no publisher should send, to show the dead-letter path.
        await publisher.publish_raw(settings.topic_usage, b"acme", b"{not json")
    print(f"published {len(events)} events and 1 malformed message; alerts as they arrive:")
    seen: list[Alert] = []
    async for record in follow(settings.bootstrap_servers, settings.topic_alerts, timeout_s, until=worker.dead):
        alert = Alert.model_validate_json(record.value or b"")
        print(format_alert(alert), flush=True)
        seen.append(alert)
        if expected <= episode_changes(seen):
            break
    return seen


def run_demo(bootstrap: str | None = None, timeout_s: float = 90.0) -> int:
    started = time.monotonic()
    events = story()
    expected = episode_changes(expected_alerts(events, RulesConfig()))
    with _broker(bootstrap) as (servers, tuning), tempfile.TemporaryDirectory() as tmp:
        run_id = uuid.uuid4().hex[:8]
        settings = Settings(
            bootstrap_servers=servers,
            app_id=f"churnwatch-demo-{run_id}",
            data_dir=Path(tmp) / "data",
            web_port=free_port(),
            clock="event",  # the story's own timestamps age the customers
            sweep_interval_s=1.0,
        )
        asyncio.run(ensure_topics(settings))
        worker = WorkerProcess(settings, Path(tmp) / "worker.log", tuning)
        with worker:
            print(f"worker started, pid {worker.pid}, app id {settings.app_id}")
            seen = asyncio.run(_publish_and_watch(settings, events, expected, worker, timeout_s))
            alive = worker.alive()
        code = worker.process.returncode if worker.process else None
        if not alive or not seen:
            print(worker.log_text()[-4000:])
    got = episode_changes(seen)
    print(f"{len(seen)} alerts read back from '{settings.topic_alerts}' in {time.monotonic() - started:.1f}s;"
          f" {len(expected & got)} of the {len(expected)} episode openings and resolutions"
          " that an offline replay of the same events gives;"
          f" worker stopped (exit {code}), broker stopped")
    return 0 if seen and alive else 1
