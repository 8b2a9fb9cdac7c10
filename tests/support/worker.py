"""A worker process under test, and the ways a test talks to it: Kafka and its HTTP port only."""

from __future__ import annotations

import asyncio
import contextlib
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client.parser import text_string_to_metric_families

from churnwatch.dev.embedded_broker import free_port
from churnwatch.dev.worker_process import WorkerProcess
from churnwatch.kafka.publisher import EventPublisher
from churnwatch.kafka.topics import ensure_topics
from churnwatch.schemas.events import Event
from churnwatch.settings import Settings
from tests.support.brokers import Broker


def make_settings(broker: Broker, data_dir: Path, **overrides: object) -> Settings:
    """Settings with topics and a group of their own, so tests never share state."""
    run = uuid.uuid4().hex[:8]
    fields: dict[str, object] = {
        name: f"{field.default}-{run}"
        for name, field in Settings.model_fields.items()
        if name.startswith("topic_")
    }
    fields.update(
        bootstrap_servers=broker.bootstrap_servers,
        app_id=f"churnwatch-test-{run}",
        partitions=4,
        data_dir=data_dir,
        web_port=free_port(),
        clock="event",
        sweep_interval_s=0.5,
    )
    fields.update(overrides)
    return Settings(**fields)


@contextlib.contextmanager
def running_worker(broker: Broker, tmp: Path, **overrides: object) -> Iterator[tuple[Settings, WorkerProcess]]:
    """A worker process with topics of its own; stopped at the end, which must be clean."""
    settings = make_settings(broker, tmp / "data", **overrides)
    asyncio.run(ensure_topics(settings))
    worker = WorkerProcess(settings, tmp / "worker.log", broker.worker_env).start()
    try:
        yield settings, worker
    finally:
        code = worker.stop()
        assert code == 0, f"worker exited with {code}: {worker.log_text()[-3000:]}"


def http_get(settings: Settings, path: str) -> tuple[int, bytes]:
    """GET from a worker's HTTP server: (status, body); an HTTP error is an answer too."""
    url = f"http://{settings.web_host}:{settings.web_port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def publish_events(settings: Settings, events: list[Event]) -> None:
    """Publish events to their input topics, keyed by customer, as a backend service would."""
    async def publish() -> None:
        async with EventPublisher(settings) as publisher:
            for event in events:
                await publisher.publish(event)

    asyncio.run(publish())


def metric_total(settings: Settings, name: str, unless: dict[str, str] | None = None,
                 only: dict[str, str] | None = None) -> float:
    """The sum of a metric's samples over its labels, scraped from the worker's /metrics; ``unless``: samples
    with these label values left out; ``only``: only samples with these label values."""
    text = http_get(settings, "/metrics")[1].decode()
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == name and not (unless and unless.items() <= sample.labels.items())
               and (not only or only.items() <= sample.labels.items()))


def events_consumed(settings: Settings) -> float:
    """The worker's count of accepted events (a repeated event id counted again)."""
    return metric_total(settings, "churnwatch_events_consumed_total")


def events_applied(settings: Settings) -> float:
    """Accepted events not seen before: what a stream of distinct events must reach, whatever is read twice.

    Repeats are at-least-once's: after a rebalance a partition is read again from its committed offset, or
    from its start when the group never committed it.
    """
    return metric_total(settings, "churnwatch_events_consumed_total", unless={"outcome": "duplicate"})


def wait_for(check, timeout_s: float = 90.0):
    """``check()`` until it returns something true or time runs out; a worker not listening yet is a no."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            result = check()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            result = None
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


async def end_offsets_and_committed(settings: Settings) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
    """The broker's end offsets of the input partitions, and the worker group's committed offsets."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=None)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await consumer.start()
    await admin.start()
    try:
        partitions = [TopicPartition(topic, p) for topic in settings.input_topics for p in range(settings.partitions)]
        ends = await consumer.end_offsets(partitions)
        committed = await admin.list_consumer_group_offsets(settings.app_id)
        return ends, {tp: meta.offset for tp, meta in committed.items() if tp in ends}
    finally:
        await consumer.stop()
        await admin.close()


def committed_to_the_end(settings: Settings) -> bool:
    """Whether the worker group has committed every input partition up to its end (an empty one has no commit)."""
    ends, committed = asyncio.run(end_offsets_and_committed(settings))
    return all(committed.get(tp, 0) == end for tp, end in ends.items())
