"""Figures on a broker: the raw aiokafka rate, the bare Faust rate, the worker's rate.

All three read the same pre-published events on the same broker in the same
run, so their ratios mean something on a noisy machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from bench.pure import cpu_seconds
from churnwatch.rules.alert_ids import alert_id
from churnwatch.schemas.alert import RuleName
from churnwatch.schemas.events import Event, PaymentEvent, SubscriptionEvent, TicketEvent, UsageEvent
from churnwatch.dev.child_process import ChildProcess
from churnwatch.dev.embedded_broker import WORKER_TUNING, EmbeddedBroker, free_port
from churnwatch.dev.kafka_broker import KafkaBroker
from churnwatch.kafka.publisher import encode
from churnwatch.settings import Settings
from churnwatch.kafka.topics import ensure_topics
from churnwatch.dev.worker_process import WorkerProcess, settings_env

START = datetime(2026, 6, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Measure:
    """A rate, and the CPU time per event of the process doing the work and of the broker meanwhile."""

    rate: float  # events/s
    cpu_us: float  # CPU microseconds per event, the consuming process(es)
    broker_cpu_us: float | None = None  # the broker process, over the same stretch


class CpuWindow:
    """CPU seconds of some processes between ``start()`` and ``stop()``."""

    def __init__(self, *pids: int | None) -> None:
        self.pids = pids
        self.used: list[float] = [0.0] * len(pids)
        self._at: list[float] = []

    def start(self) -> None:
        self._at = [cpu_seconds(pid) for pid in self.pids]

    def stop(self) -> list[float]:
        self.used = [cpu_seconds(pid) - before for pid, before in zip(self.pids, self._at, strict=True)]
        return self.used


def realistic_mix(events: int, customers: int, seed: int = 3) -> list[Event]:
    return list(mix(events, customers, seed))


def mix(events: int, customers: int, seed: int = 3, start: datetime = START) -> Iterator[Event]:
    """All four types over many customers, one every 30 s from ``start``:
    80% usage, 10% subscription, 5% payment, 5% ticket."""
    rng = random.Random(seed)
    for n in range(events):
        customer = f"b{rng.randrange(customers):06d}"
        at = start + timedelta(seconds=n * 30)
        common = {"event_id": f"e{n}", "customer_id": customer, "occurred_at": at}
        roll = rng.random()
        if roll < 0.80:
            yield UsageEvent(**common, kind=rng.choice(("login", "purchase", "feature_use", "session")))
        elif roll < 0.90:
            yield SubscriptionEvent(**common, action="renewed", plan="pro", mrr=99.0)
        elif roll < 0.95:
            yield PaymentEvent(**common, status="failed", invoice_id=f"i{n}", amount=99.0, currency="EUR",
                               failure_reason=rng.choice(("card_expired", "card_declined")))
        else:
            yield TicketEvent(**common, ticket_id=f"t{n}", action="opened", sentiment=rng.uniform(-1, 1))


def heavy_tailed_mix(events: int, customers: int, seed: int = 5, skew: float = 1.1,
                     start: datetime = START) -> list[Event]:
    """The same four types, but customers drawn by a Zipf-like law (the ``rank``-th most active has
    weight ``1 / rank ** skew``) over one day of event time: a few customers send much, most little,
    as in a real product."""
    rng = random.Random(seed)
    weights = [1.0 / (rank ** skew) for rank in range(1, customers + 1)]
    drawn = rng.choices(range(customers), weights=weights, k=events)
    step = 86_400 / max(1, events)
    uniform = list(mix(events, 1, seed, start))  # types and payloads as in mix(); customer and time replaced
    return [e.model_copy(update={"customer_id": f"z{c:06d}", "occurred_at": start + timedelta(seconds=n * step)})
            for n, (e, c) in enumerate(zip(uniform, drawn, strict=True))]


def fresh_settings(bootstrap: str, data_dir: Path) -> Settings:
    run = uuid.uuid4().hex[:8]
    topics = {name: f"{field.default}-bench-{run}" for name, field in Settings.model_fields.items()
              if name.startswith("topic_")}
    return Settings(bootstrap_servers=bootstrap, app_id=f"bench-{run}", data_dir=data_dir,
                    web_port=free_port(), clock="event", **topics)


async def publish(settings: Settings, events: list[Event]) -> None:
    await _input_topics_with_retention(settings)
    await ensure_topics(settings)
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, linger_ms=20,
                                max_batch_size=262_144)
    await producer.start()
    try:
        for event in events:
            key, value = encode(event)
            await producer.send(settings.topic_for(event.type), value=value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def _input_topics_with_retention(settings: Settings) -> None:
    """The input topics, created with their retention stated: the peer (Quix Streams) derives its
    changelog topics' settings from it, and the embedded broker reports no default."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        topics = [NewTopic(name, settings.partitions, settings.replication_factor,
                           topic_configs={"retention.ms": str(7 * 86_400_000)}) for name in settings.input_topics]
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics(topics)
    finally:
        await admin.close()


async def raw_rate(settings: Settings, expect: int, broker_pid: int | None, timeout_s: float = 120) -> Measure:
    """The ceiling: a plain aiokafka consumer that parses JSON (in this process)."""
    consumer = AIOKafkaConsumer(*settings.input_topics, bootstrap_servers=settings.bootstrap_servers,
                                group_id=None, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    count, first = 0, 0.0
    cpu = CpuWindow(None, broker_pid)
    deadline = time.monotonic() + timeout_s
    try:
        while count < expect and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for records in batches.values():
                if count == 0 and records:
                    first = time.perf_counter()
                    cpu.start()
                for record in records:
                    json.loads(record.value)
                count += len(records)
    finally:
        await consumer.stop()
    if count < expect:
        raise RuntimeError(f"raw consumer read {count} of {expect}")
    mine, broker = cpu.stop()
    return Measure(expect / (time.perf_counter() - first), mine / expect * 1e6,
                   broker / expect * 1e6 if broker_pid else None)


def bare_faust_rate(settings: Settings, expect: int, env: dict[str, str], table: bool = False,
                    take: int = 0, timeout_s: float = 300) -> Measure:
    """A Faust agent that parses each event and, with ``table``, writes it to a table (one changelog message
    each); with ``take``, in batches of up to that many (one write per customer per batch)."""
    return _child_rate("bare Faust agent", [sys.executable, "-m", "bench.faust_bare"], lambda tmp: {
        **{k: v for k, v in os.environ.items() if not k.startswith("CHURNWATCH_")},
        **settings_env(settings), **env, "BENCH_EXPECT": str(expect), "BENCH_RESULT": str(tmp / "rate"),
        "BENCH_TABLE": "1" if table else "0", "BENCH_TAKE": str(take)}, timeout_s)


PEER_PYTHON = Path(__file__).resolve().parents[1] / ".quix-venv" / "bin" / "python"


def peer_rate(settings: Settings, expect: int, stateful: bool, timeout_s: float = 300) -> Measure:
    """Quix Streams on the same topics (``bench.quix_peer``, from its own virtual environment)."""
    if not PEER_PYTHON.exists():
        raise RuntimeError(f"no {PEER_PYTHON}: make quix-venv builds it")
    return _child_rate("the Quix Streams peer", [str(PEER_PYTHON), str(Path(__file__).with_name("quix_peer.py"))],
                       lambda tmp: {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CHURNWATCH_", "PYTHON"))},
        "PEER_BOOTSTRAP": settings.bootstrap_servers, "PEER_TOPICS": ",".join(settings.input_topics),
        "PEER_GROUP": f"{settings.app_id}-quix-{uuid.uuid4().hex[:6]}", "PEER_STATE_DIR": str(tmp / "state"),
        "PEER_MODE": "state" if stateful else "parse", "PEER_EXPECT": str(expect), "PEER_RESULT": str(tmp / "rate")},
        timeout_s)


def _child_rate(what: str, argv: list[str], env_in: Callable[[Path], dict[str, str]], timeout_s: float) -> Measure:
    """Run a measuring process (given a scratch directory) until it writes "rate cpu_us" to ``rate`` there."""
    with tempfile.TemporaryDirectory() as tmp:
        child = ChildProcess(Path(tmp) / "child.log")
        child.spawn(argv, env_in(Path(tmp)))
        try:
            if not appeared(Path(tmp) / "rate", child, timeout_s):
                raise RuntimeError(f"{what} did not finish: {child.log_text()[-2000:]}")
            rate, cpu_us = map(float, (Path(tmp) / "rate").read_text().split())
            return Measure(rate, cpu_us)
        finally:
            child.stop()


def appeared(result: Path, child: ChildProcess, timeout_s: float) -> bool:
    """True once ``result`` exists; False if the child died or time ran out first."""
    deadline = time.monotonic() + timeout_s
    while not result.exists() and time.monotonic() < deadline and not child.dead():
        time.sleep(0.2)
    return result.exists()


def scrape(settings: Settings) -> list[Sample]:
    """Every sample a worker serves at /metrics."""
    url = f"http://{settings.web_host}:{settings.web_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def processed(settings: Settings) -> float:
    return sum(sample.value for sample in scrape(settings)
               if sample.name in ("churnwatch_events_consumed_total", "churnwatch_events_rejected_total"))


def _settled(replicas: list[Settings], timeout_s: float = 120) -> None:
    """Wait until every worker is ready and together they hold every input partition: the group is formed."""
    wanted = len(replicas[0].input_topics) * replicas[0].partitions
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            reports = []
            for replica in replicas:
                url = f"http://{replica.web_host}:{replica.web_port}/readyz"
                with urllib.request.urlopen(url, timeout=2) as response:
                    reports.append(json.loads(response.read()))
            if sum(r["assigned_input_partitions"] for r in reports) == wanted:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the workers did not settle into one group")


def worker_rate(settings: Settings, expect: int, env: dict[str, str], workers: int = 1,
                broker_pid: int | None = None, timeout_s: float = 400,
                publish_when_settled: list[Event] | None = None) -> Measure:
    """The full pipeline: ``churnwatch worker`` processes (validation, state, rules, model, alerts).

    With ``publish_when_settled`` the topics start empty: the events are
    published once every worker is ready and the partitions are shared out,
    so no rebalance falls inside the measured stretch (for comparing one
    worker with several).
    """
    with tempfile.TemporaryDirectory() as tmp:
        replicas = [settings] + [settings.model_copy(update={"web_port": free_port()}) for _ in range(workers - 1)]
        if publish_when_settled is not None:
            asyncio.run(ensure_topics(settings))
        processes = [WorkerProcess(s.model_copy(update={"data_dir": Path(tmp) / f"d{i}"}),
                                   Path(tmp) / f"w{i}.log", env).start() for i, s in enumerate(replicas)]
        cpu = CpuWindow(*(p.pid for p in processes), broker_pid)
        try:
            if publish_when_settled is not None:
                _settled(replicas)
                asyncio.run(publish(settings, publish_when_settled))
            first, done = 0.0, 0.0
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline and not any(p.dead() for p in processes):
                try:
                    total = sum(processed(s) for s in replicas)
                except OSError:
                    total = 0.0
                if total and not first:
                    first = time.perf_counter()
                    cpu.start()
                if total >= expect:
                    done = time.perf_counter()
                    break
                time.sleep(0.1)
            if not done:
                raise RuntimeError(f"worker did not finish: {processes[0].log_text()[-2000:]}")
            *workers_cpu, broker = cpu.stop()
            return Measure(expect / (done - first), sum(workers_cpu) / expect * 1e6,
                           broker / expect * 1e6 if broker_pid else None)
        finally:
            for process in processes:
                process.stop()


async def _paced_failures(settings: Settings, rate: float, seconds: float, sent: dict[str, float]) -> None:
    """Usage at ``rate`` events/s with a failed payment of a new customer every 20th event."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, linger_ms=1)
    await producer.start()
    try:
        began = time.monotonic()
        n = 0
        while (elapsed := time.monotonic() - began) < seconds:
            if n > elapsed * rate:
                await asyncio.sleep(min(0.01, n / rate - elapsed))
                continue
            at = START + timedelta(seconds=n)
            if n % 20 == 0:
                customer = f"lat-{n}"
                event: Event = PaymentEvent(event_id=f"lat-pay-{n}", customer_id=customer, occurred_at=at,
                                            status="failed", invoice_id=f"i{n}", amount=9.0, currency="EUR",
                                            failure_reason="card_declined")
                sent[alert_id(customer, RuleName.PAYMENT_FAILURE, event.event_id)] = time.perf_counter()
            else:
                event = UsageEvent(event_id=f"lat-use-{n}", customer_id=f"lat-u{n % 5000}", occurred_at=at,
                                   kind="login")
            key, value = encode(event)
            await producer.send(settings.topic_for(event.type), value=value, key=key)
            n += 1
        await producer.flush()
    finally:
        await producer.stop()


async def _alert_arrivals(settings: Settings, received: dict[str, float], stop: asyncio.Event) -> None:
    consumer = AIOKafkaConsumer(settings.topic_alerts, bootstrap_servers=settings.bootstrap_servers,
                                group_id=None, auto_offset_reset="latest", enable_auto_commit=False)
    await consumer.start()
    try:
        while not stop.is_set():
            for records in (await consumer.getmany(timeout_ms=100)).values():
                now = time.perf_counter()
                for record in records:
                    received.setdefault(json.loads(record.value)["alert_id"], now)
    finally:
        await consumer.stop()


def alert_latency(settings: Settings, rate: float, env: dict[str, str],
                  seconds: float = 20.0) -> tuple[float, float, int]:
    """Event-to-alert latency (p50, p99 seconds, samples) for payment failures at a steady offered load."""
    asyncio.run(ensure_topics(settings))
    with tempfile.TemporaryDirectory() as tmp:
        worker = WorkerProcess(settings.model_copy(update={"data_dir": Path(tmp) / "d"}), Path(tmp) / "w.log", env)
        with worker:
            _settled([settings], timeout_s=60)  # measure a running worker, not its start-up

            async def run() -> tuple[dict[str, float], dict[str, float]]:
                sent: dict[str, float] = {}
                received: dict[str, float] = {}
                stop = asyncio.Event()
                follower = asyncio.create_task(_alert_arrivals(settings, received, stop))
                await asyncio.sleep(1.0)
                await _paced_failures(settings, rate, seconds, sent)
                deadline = time.monotonic() + 30
                while set(sent) - set(received) and time.monotonic() < deadline:
                    await asyncio.sleep(0.1)
                stop.set()
                await follower
                return sent, received

            sent, received = asyncio.run(run())
    latencies = sorted(received[k] - t for k, t in sent.items() if k in received)
    if not latencies:
        raise RuntimeError("no alert arrived")
    return statistics.median(latencies), latencies[int(0.99 * (len(latencies) - 1))], len(latencies)


@contextlib.contextmanager
def started(kind: str, directory: Path) -> Iterator[tuple[str, int | None, dict[str, str], dict[str, str]]]:
    """(bootstrap servers, broker pid, the worker's settings there, the other producer batching)."""
    if kind == "kafka":
        with KafkaBroker(work_dir=directory / "kafka") as kafka:
            # Production settings: multi-record producer batches; the other batching is one record each.
            yield kafka.bootstrap_servers, kafka.pid, {}, {"CHURNWATCH_PRODUCER_MAX_BATCH_SIZE": "1"}
        return
    with EmbeddedBroker() as embedded:
        yield (embedded.bootstrap_servers, embedded.pid, dict(WORKER_TUNING),
               {**WORKER_TUNING, "CHURNWATCH_PRODUCER_MAX_BATCH_SIZE": "16384"})
