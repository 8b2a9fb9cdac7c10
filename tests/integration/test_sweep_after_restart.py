"""The sweep's due index is rebuilt after a restart, with either store.

A customer goes quiet while the first worker runs; a second worker with the
same app id, which never saw that customer's events, must still find it due
and raise its disengagement alert as the other customer moves the clock on.
In memory the second worker reads every state back from the changelog; on
disk (same data directory) it reads only the changelog's tail and finds the
rest in its store.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from churnwatch.schemas.alert import Alert
from churnwatch.schemas.dead_letter import DeadLetter
from churnwatch.schemas.events import Event
from churnwatch.kafka.publisher import EventPublisher
from churnwatch.kafka.reader import collect
from churnwatch.kafka.topics import ensure_topics
from churnwatch.dev.worker_process import WorkerProcess
from tests.support.brokers import Broker
from tests.support.worker import make_settings, metric_total, wait_for
from churnwatch.testing.events import day, login, usage

pytestmark = pytest.mark.integration
WAIT_S = 120.0


def active_days(customer: str, days: range) -> list[Event]:
    events: list[Event] = []
    for d in days:
        events += [login(day(d + 0.1), customer=customer), usage(day(d + 0.2), customer=customer)]
    return events


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_a_restarted_worker_sweeps_customers_it_only_knows_from_before(
    broker: Broker, tmp_path: Path, store: str
) -> None:
    settings = make_settings(broker, tmp_path / "data", store=store)
    asyncio.run(ensure_topics(settings))

    async def publish(events: list[Event], marker: bool = False) -> None:
        async with EventPublisher(settings) as publisher:
            for event in events:
                await publisher.publish(event)
            if marker:  # on sleeper's usage partition, after its events
                await publisher.publish_raw(settings.topic_usage, b"sleeper", b"marker: not json")

    first = WorkerProcess(settings, tmp_path / "first.log", broker.worker_env).start()
    try:
        asyncio.run(publish(active_days("sleeper", range(0, 21)) + active_days("keeper", range(0, 21)),
                            marker=True))
        letters = asyncio.run(collect(settings.bootstrap_servers, settings.topic_dead_letters,
                                      lambda rs: any(r.key == b"sleeper" for r in rs), WAIT_S,
                                      until=first.dead))
        assert [DeadLetter.model_validate_json(r.value).reason for r in letters] == ["not_json"]
    finally:
        assert first.stop() == 0, first.log_text()[-3000:]

    with WorkerProcess(settings, tmp_path / "second.log", broker.worker_env) as second:
        asyncio.run(publish(active_days("keeper", range(21, 61))))
        records = asyncio.run(collect(settings.bootstrap_servers, settings.topic_alerts,
                                      lambda rs: any(r.key == b"sleeper" for r in rs), WAIT_S,
                                      until=second.dead))
        alerts = [Alert.model_validate_json(r.value) for r in records]
        assert [(a.customer_id, a.rule, a.status) for a in alerts] == [
            ("sleeper", "disengagement", "firing")], second.log_text()[-3000:]
        assert alerts[0].evidence["last_login_at"].startswith(day(20).date().isoformat())
        # Both customers counted, whichever store (on disk: counted at recovery, not by reading every key).
        assert wait_for(lambda: metric_total(settings, "churnwatch_customers_tracked") == 2, 30), \
            metric_total(settings, "churnwatch_customers_tracked")
        if store == "rocksdb://":
            assert "due index rebuilt from 2 stored states" in second.log_text()
