"""``make chaos``: the live workers against the replay of the same events, with faults, on Apache Kafka.

What it proves: the product a support team gets (workers reading Kafka,
crashing, taking over each other's partitions, riding out a broker that
stops answering) sends the alerts the replay and the backtest measure, and
keeps every customer's state as the replay does: every event counted once.

One run: a simulated customer base (``churnwatch simulate``) is replayed
offline, then published to Apache Kafka at a live pace (or all at once
before the workers start: a backlog) while several workers read it; a
random worker is SIGKILLed and started again every so often, and the broker
JVM is stopped (SIGSTOP) for a while once. Then the whole alerts topic is
read back and compared with the replay, per (alert id, sequence, status):
alerts missing, alerts extra, repeats, and repeats whose content differs;
and each customer's newest state in the changelog is compared with the
replay's. One line of figures; exit 1 on any difference.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from churnwatch.dev.embedded_broker import WORKER_TUNING, EmbeddedBroker, free_port
from churnwatch.dev.kafka_broker import KafkaBroker
from churnwatch.dev.worker_process import WorkerProcess
from churnwatch.kafka.publisher import EventPublisher, publish_file, publish_paced
from churnwatch.kafka.topics import ensure_topics
from churnwatch.offline.replay import Replay
from churnwatch.offline.simulator import DEFAULT_START, simulate
from churnwatch.rules import CustomerState, load_rules
from churnwatch.rules.labels import Labelled
from churnwatch.schemas.alert import Alert, RuleName
from churnwatch.schemas.dead_letter import DeadLetter
from churnwatch.schemas.events import Event
from churnwatch.settings import Settings
from churnwatch.worker.app import STATE_TABLE
from churnwatch.worker.labels import encode_label
from churnwatch.worker.versions import Version, version_of

MARKER = b"churnwatch-chaos: end of stream (not an event)"
BACKLOG_FAULTS_S = 60.0  # with a backlog, how long faults go on once the workers start
QUIET_S = 10.0  # once every expected record of a topic is in, how long nothing new must come before it is read
Say = Callable[[str], None]
AlertKey = tuple[str, int, str]  # (alert_id, sequence, status)


@dataclass(frozen=True)
class Plan:
    """What one run does; the defaults are the long form (``make chaos``)."""

    customers: int = 300
    days: int = 150
    seed: int = 5
    speed: float = 0.75  # simulated days published per wall second
    workers: int = 3
    partitions: int = 6
    kill_every_s: tuple[float, float] | None = (15.0, 30.0)  # a random worker SIGKILLed, then started again
    broker_pause_s: float = 20.0  # the broker stopped (SIGSTOP) once, this long; 0: never
    store: str = "memory://"
    backlog: bool = False  # every event published before the workers start
    broker: str = "kafka"  # kafka (Apache Kafka from its jars) or embedded
    settle_s: float = 240.0  # after the end of stream, the longest wait for the alerts to be complete


# The short form, for CI: a few kills and one pause in a few minutes.
SHORT = Plan(customers=60, days=75, seed=5, speed=1.5, kill_every_s=(12.0, 20.0), broker_pause_s=10.0)


@dataclass
class Outcome:
    """What one run found."""

    plan: Plan
    events: int = 0
    kills: int = 0
    broker_paused_s: float = 0.0
    expected: int = 0  # alert changes the replay sent, up to the cut
    expected_model: int = 0  # of which model_risk's
    received: int = 0  # alert messages read back, up to the cut
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    unlike: list[str] = field(default_factory=list)  # the same (id, sequence, status) as the replay's, other content
    repeats: int = 0
    repeats_unlike: list[str] = field(default_factory=list)  # a repeat whose content differs from the first
    customers: int = 0
    states_unlike: list[str] = field(default_factory=list)
    labels: int = 0  # snapshots the replay labelled, due up to the cut: what the model learns from
    labels_missing: list[str] = field(default_factory=list)
    labels_extra: list[str] = field(default_factory=list)
    labels_unlike: list[str] = field(default_factory=list)  # the first copy on the labels topic, not the replay's
    cut: str = ""  # alerts compared up to this event time (every partition's last event)
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)  # a worker that died, a stream that never ended

    @property
    def clean(self) -> bool:
        return not (self.missing or self.extra or self.unlike or self.repeats_unlike or self.states_unlike
                    or self.labels_missing or self.labels_extra or self.labels_unlike or self.problems)

    def line(self) -> str:
        plan = self.plan
        how = "backlog" if plan.backlog else f"{plan.speed:g} days/s"
        return (f"chaos ({plan.broker}, {plan.store}, {how}): {self.events} events, {plan.workers} workers, "
                f"{self.kills} kills, broker stopped {self.broker_paused_s:.0f} s; alerts: {self.expected} "
                f"expected ({self.expected_model} model_risk), {len(self.missing)} missing, {len(self.extra)} extra, "
                f"{len(self.unlike)} unlike the "
                f"replay's, {self.repeats} repeats "
                f"({len(self.repeats_unlike)} unlike the first); states: {self.customers} customers, "
                f"{len(self.states_unlike)} unlike the replay's; labels: {self.labels} expected, "
                f"{len(self.labels_missing)} missing, {len(self.labels_extra)} extra, {len(self.labels_unlike)} "
                f"unlike the replay's; {self.seconds:.0f} s")


def alert_key(alert: Alert) -> AlertKey:
    return alert.alert_id, alert.sequence, alert.status.value


def told(alert: Alert) -> str:
    return (f"{alert.customer_id} {alert.rule.value} {alert.status.value} seq {alert.sequence} at "
            f"{alert.triggered_at:%Y-%m-%d %H:%M:%S}: {'; '.join(alert.reasons)[:120]}")


def _difference(got: Alert, want: Alert) -> str:
    """The fields of a worker's alert that differ from the replay's, with both values."""
    mine, theirs = got.model_dump(mode="json"), want.model_dump(mode="json")
    return "; ".join(f"{name}: the workers {mine[name]!r}, the replay {theirs[name]!r}"
                     for name in mine if mine[name] != theirs[name])[:600]


def compare_alerts(expected: list[Alert], received: list[Alert], outcome: Outcome) -> None:
    """Missing, extra, repeats and repeats unlike the first copy, per (alert id, sequence, status)."""
    want = {alert_key(a): a for a in expected}
    first: dict[AlertKey, Alert] = {}
    for alert in received:
        key = alert_key(alert)
        if key in first:
            outcome.repeats += 1
            if alert != first[key]:
                outcome.repeats_unlike.append(f"{told(first[key])} | then {_difference(alert, first[key])}")
        else:
            first[key] = alert
    outcome.expected, outcome.received = len(want), len(received)
    outcome.expected_model = sum(a.rule is RuleName.MODEL_RISK for a in want.values())
    outcome.missing = sorted(told(a) for k, a in want.items() if k not in first)
    outcome.extra = sorted(told(a) for k, a in first.items() if k not in want)
    outcome.unlike = [f"{told(a)} | {_difference(a, want[k])}" for k, a in first.items()
                      if k in want and a != want[k]]


def newest_states(records: Iterable[ConsumerRecord[bytes, bytes]]) -> dict[str, CustomerState]:
    """Each customer's newest state in the changelog: what a worker recovering the table takes."""
    newest: dict[str, tuple[Version, CustomerState]] = {}
    for record in records:  # each customer's in offset order: of one version, the later record wins
        if record.value is None:
            continue
        state = CustomerState.from_bytes(record.value)
        version = version_of(record.value)
        known = newest.get(state.customer_id)
        if known is None or version >= known[0]:
            newest[state.customer_id] = (version, state)
    return {customer: state for customer, (_, state) in newest.items()}


def compare_states(want: dict[str, CustomerState], got: dict[str, CustomerState], outcome: Outcome) -> None:
    outcome.customers = len(want)
    for customer in sorted(set(want) | set(got)):
        mine, theirs = got.get(customer), want.get(customer)
        if mine is None or theirs is None:
            outcome.states_unlike.append(f"{customer}: only {'the replay' if mine is None else 'the workers'} has it")
            continue
        a, b = mine.facts(), theirs.facts()
        if a != b:
            outcome.states_unlike.append(f"{customer} ({', '.join(mine.inputs)}: {list(mine.inputs.values())}): "
                                         + "; ".join(_fact_difference(name, a.get(name), b.get(name))
                                                     for name in sorted(set(a) | set(b)) if a.get(name) != b.get(name)))


def _fact_difference(name: str, mine: object, theirs: object) -> str:
    """One fact that differs: the entries only one side has (a mapping), or both values."""
    if isinstance(mine, dict) and isinstance(theirs, dict):
        only_mine = {k: mine[k] for k in mine.keys() - theirs.keys()}
        only_theirs = {k: theirs[k] for k in theirs.keys() - mine.keys()}
        unequal = {k: (mine[k], theirs[k]) for k in mine.keys() & theirs.keys() if mine[k] != theirs[k]}
        return f"{name}: only the workers {only_mine}, only the replay {only_theirs}, unequal {unequal}"[:500]
    if isinstance(mine, list | tuple) and isinstance(theirs, list | tuple):
        return (f"{name}: only the workers {[x for x in mine if x not in theirs]}, "
                f"only the replay {[x for x in theirs if x not in mine]}")[:500]
    return f"{name}: the workers {mine!r}, the replay {theirs!r}"[:300]


LabelKey = tuple[str, int]  # (customer, snapshot time)


def replayed(events: list[Event]) -> tuple[list[Alert], dict[str, CustomerState], dict[LabelKey, Labelled]]:
    alerts: list[Alert] = []
    labels: dict[LabelKey, Labelled] = {}
    replay = Replay(load_rules(), alerts.append,
                    on_labelled=lambda label: labels.setdefault((label.customer_id, label.taken_at), label))
    for event in events:
        replay.feed_event(event)
    replay.finish()
    return alerts, dict(replay.states), labels


def compare_labels(want: dict[LabelKey, Labelled], records: Iterable[ConsumerRecord[bytes, bytes]], cut: datetime,
                   outcome: Outcome) -> None:
    """Each labelled snapshot on the labels topic (the first copy) against the replay's, due up to ``cut``:
    the features, score and label every worker's model learns from, so the model_risk alerts of weeks later."""
    first: dict[LabelKey, dict[str, Any]] = {}
    for record in records:
        found = json.loads(record.value or b"{}")
        if found.get("kind") == "label":
            first.setdefault((found["customer_id"], found["taken_at"]), found)
    expected = labels_due(want, cut)
    outcome.labels = len(expected)
    for key, label in sorted(expected.items(), key=lambda item: item[0][1]):
        mine = json.loads(encode_label(label))
        if key not in first:
            outcome.labels_missing.append(f"{key[0]} at {datetime.fromtimestamp(key[1], UTC):%Y-%m-%d %H:%M}")
        elif first[key] != mine:
            fields = [name for name in mine if mine[name] != first[key].get(name)]
            outcome.labels_unlike.append(f"{key[0]} at {datetime.fromtimestamp(key[1], UTC):%Y-%m-%d %H:%M}: "
                                         f"{', '.join(fields)} differ")
    due = _labelled_by(cut)
    outcome.labels_extra = [f"{c} at {datetime.fromtimestamp(t, UTC):%Y-%m-%d %H:%M}" for c, t in first
                            if (c, t) not in want and t <= due]


def labels_due(want: dict[LabelKey, Labelled], cut: datetime) -> dict[LabelKey, Labelled]:
    """The replay's labels whose horizon ended by ``cut``: every worker's sweep reaches that far."""
    due = _labelled_by(cut)
    return {key: label for key, label in want.items() if key[1] <= due}


def _labelled_by(cut: datetime) -> float:
    """The newest snapshot time whose label is known at ``cut``."""
    return cut.timestamp() - load_rules().model.horizon_days * 86_400


def group_cut(events: list[Event], partitions: int) -> datetime:
    """The earliest of every partition's last event time: each worker's sweep reaches at least this far."""
    from aiokafka.partitioner import DefaultPartitioner

    partitioner = DefaultPartitioner()
    last: dict[int, datetime] = {}
    ids = list(range(partitions))
    for event in events:
        p = partitioner(event.customer_id.encode(), ids, ids)
        last[p] = max(last.get(p, event.occurred_at), event.occurred_at)
    return min(last.values())


class Crew:
    """The workers of one run: started, killed at random, started again."""

    def __init__(self, base: Settings, count: int, directory: Path, env: dict[str, str], rng: random.Random) -> None:
        self.settings = [base.model_copy(update={"web_port": free_port(), "data_dir": directory / f"w{n}"})
                         for n in range(count)]
        self.directory = directory
        self.env = env
        self.rng = rng
        self.workers = [self._start(n) for n in range(count)]
        self.kills = 0

    def _start(self, n: int) -> WorkerProcess:
        return WorkerProcess(self.settings[n], self.directory / f"worker-{n}.log", self.env).start()

    def kill_one(self) -> int:
        n = self.rng.randrange(len(self.workers))
        self.workers[n].kill()
        self.kills += 1
        self.workers[n] = self._start(n)
        return n

    def dead(self) -> list[int]:
        return [n for n, w in enumerate(self.workers) if w.dead()]

    def stop(self) -> list[int | None]:
        return [w.stop() for w in self.workers]


async def _faults(plan: Plan, crew: Crew, broker_pid: int | None, publishing: asyncio.Task[object],
                  publish_s: float, outcome: Outcome, say: Say) -> None:
    """Kills while the events flow, and one broker stop part-way through."""
    rng = crew.rng
    started = time.monotonic()
    pause_at = started + 0.4 * publish_s if plan.broker_pause_s > 0 and broker_pid else None
    next_kill = started + rng.uniform(*plan.kill_every_s) if plan.kill_every_s else None
    while not publishing.done():
        now = time.monotonic()
        if pause_at is not None and now >= pause_at:
            assert broker_pid is not None
            say(f"broker stopped (SIGSTOP) for {plan.broker_pause_s:g} s")
            os.kill(broker_pid, signal.SIGSTOP)
            try:
                await asyncio.sleep(plan.broker_pause_s)
            finally:
                os.kill(broker_pid, signal.SIGCONT)
            outcome.broker_paused_s += plan.broker_pause_s
            pause_at = None
            continue
        if next_kill is not None and now >= next_kill:
            n = await asyncio.to_thread(crew.kill_one)
            say(f"worker {n} killed (SIGKILL) and started again")
            assert plan.kill_every_s is not None
            next_kill = time.monotonic() + rng.uniform(*plan.kill_every_s)
        await asyncio.sleep(0.2)


async def _end_of_stream(settings: Settings) -> None:
    """A marker on every input partition; it comes back as a dead letter once read up to there."""
    async with EventPublisher(settings) as publisher:
        for topic in settings.input_topics:
            for partition in range(settings.partitions):
                await publisher.publish_raw(topic, b"end-of-stream", MARKER, partition)


async def _read_back(settings: Settings, expected: set[AlertKey], labelled: set[LabelKey], timeout_s: float,
                     say: Say) -> tuple[list[Alert], dict[str, CustomerState], list[ConsumerRecord[bytes, bytes]]]:
    """Dead letters until every marker is back; then alerts, and the labels topic, each until every expected
    record is in and none came for a while (or time is up); then the whole changelog.

    Labels are awaited, not read once the alerts are in: a snapshot is labelled only once scored, and the
    last weeks' snapshots are scored after the end of the stream (every partition's clock announced, the
    week's version made, the customers waiting for it swept), which can take longer than the alerts."""
    deadline = time.monotonic() + timeout_s
    markers = {(topic, p) for topic in settings.input_topics for p in range(settings.partitions)}
    seen: set[tuple[str, int]] = set()
    async with _Reader(settings.bootstrap_servers, settings.topic_dead_letters, settings.partitions) as letters:
        while not seen >= markers and time.monotonic() < deadline:
            for record in await letters.more():
                letter = DeadLetter.model_validate_json(record.value or b"")
                if letter.raw_value() == MARKER:
                    seen.add((letter.source_topic, letter.partition))
    say(f"{len(seen)} of {len(markers)} end-of-stream markers came back")
    alerts = await _until_complete(_Reader(settings.bootstrap_servers, settings.topic_alerts, settings.partitions),
                                   expected, _alert_key_of, deadline, "alert messages", say)
    labels = await _until_complete(_Reader(settings.bootstrap_servers, settings.topic_labels, 1), labelled,
                                   _label_key_of, deadline, "labels topic records", say)
    changelog = f"{settings.app_id}-{STATE_TABLE}-changelog"
    async with _Reader(settings.bootstrap_servers, changelog, settings.partitions) as reader:
        records = await asyncio.wait_for(reader.to_end(), 120.0)
    say(f"{len(records)} changelog records read back")
    return [Alert.model_validate_json(r.value or b"") for r in alerts], newest_states(records), labels


def _alert_key_of(record: ConsumerRecord[bytes, bytes]) -> AlertKey:
    return alert_key(Alert.model_validate_json(record.value or b""))


def _label_key_of(record: ConsumerRecord[bytes, bytes]) -> LabelKey | None:
    found = json.loads(record.value or b"{}")
    return (found["customer_id"], found["taken_at"]) if found.get("kind") == "label" else None


async def _until_complete(reader: _Reader, expected: set[Any], key_of: Callable[[ConsumerRecord[bytes, bytes]], Any],
                          deadline: float, what: str, say: Say) -> list[ConsumerRecord[bytes, bytes]]:
    """A topic read until every expected key is in and nothing new came for QUIET_S (repeats and extras
    come after), or the deadline: what is missing then is missing."""
    records: list[ConsumerRecord[bytes, bytes]] = []
    have: set[Any] = set()
    began = last_new = said = time.monotonic()
    complete = False
    async with reader:
        while time.monotonic() < deadline:
            more = await reader.more()
            records += more
            have.update(key_of(record) for record in more)
            now = time.monotonic()
            if more:
                last_new = now
            if not complete and expected <= have:
                complete = True
                say(f"every expected one of the {what} in after {now - began:.1f} s")
            if complete and now - last_new > QUIET_S:
                break
            if now - said > 30.0:
                said = now
                say(f"{len(records)} {what} so far, {len(expected - have)} expected ones not yet")
    say(f"{len(records)} {what} read back")
    return records


class _Reader:
    """A topic read from its start, with no consumer group."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
        self.tps = [TopicPartition(topic, p) for p in range(partitions)]

    async def __aenter__(self) -> _Reader:
        await asyncio.wait_for(self.consumer.start(), 30.0)
        self.consumer.assign(self.tps)
        await self.consumer.seek_to_beginning(*self.tps)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()

    async def more(self) -> list[ConsumerRecord[bytes, bytes]]:
        batches = await self.consumer.getmany(timeout_ms=500)
        return [record for batch in batches.values() for record in batch]

    async def to_end(self) -> list[ConsumerRecord[bytes, bytes]]:
        ends = await self.consumer.end_offsets(self.tps)
        records: list[ConsumerRecord[bytes, bytes]] = []
        while [tp for tp in self.tps if await self.consumer.position(tp) < ends[tp]]:
            records += await self.more()
        return records


@dataclass(frozen=True)
class GivenBroker:
    """A broker the caller runs (the tests' session broker): its address, and the worker settings it needs."""

    bootstrap_servers: str
    worker_env: dict[str, str]
    pid: int | None = None  # known: it can be stopped for a while


def _settings(bootstrap: str, plan: Plan) -> Settings:
    """A group and topics of the run's own, so runs on one broker never share anything."""
    run = uuid.uuid4().hex[:8]
    topics = {name: f"{spec.default}-{run}" for name, spec in Settings.model_fields.items()
              if name.startswith("topic_")}
    return Settings(bootstrap_servers=bootstrap, app_id=f"churnwatch-chaos-{run}", partitions=plan.partitions,
                    clock="event", sweep_interval_s=1.0, store=plan.store, session_timeout_s=6.0,
                    heartbeat_interval_s=1.0, rebalance_timeout_s=6.0, **topics)


def run_chaos(plan: Plan, directory: Path, say: Say = print, given: GivenBroker | None = None) -> Outcome:
    """One run; on a broker of its own (``plan.broker``) unless one is ``given``."""
    outcome = Outcome(plan)
    began = time.monotonic()
    events, _ = simulate(plan.customers, plan.days, plan.seed)
    outcome.events = len(events)
    expected_all, want_states, want_labels = replayed(events)
    cut = group_cut(events, plan.partitions)
    outcome.cut = cut.isoformat()
    expected = [a for a in expected_all if a.triggered_at <= cut]
    say(f"{len(events)} events of {plan.customers} customers over {plan.days} days (seed {plan.seed}); "
        f"the replay sent {len(expected)} alert changes up to {cut:%Y-%m-%d %H:%M}")
    with contextlib.ExitStack() as stack:
        if given is None:
            own = stack.enter_context(KafkaBroker(work_dir=directory / "kafka") if plan.broker == "kafka"
                                      else EmbeddedBroker(log_path=directory / "tansu.log"))
            given = GivenBroker(own.bootstrap_servers, {} if plan.broker == "kafka" else dict(WORKER_TUNING),
                                own.pid)
        settings = _settings(given.bootstrap_servers, plan)
        asyncio.run(ensure_topics(settings))
        say(f"broker on {given.bootstrap_servers} (pid {given.pid}); run folder {directory}")
        crew: Crew | None = None
        try:
            if plan.backlog:
                asyncio.run(publish_file(settings, events))
                say("every event published; the workers start now")
            crew = Crew(settings, plan.workers, directory, given.worker_env, random.Random(plan.seed))

            async def live() -> None:
                assert crew is not None and given is not None
                if plan.backlog:  # faults (if any) while the workers read the backlog
                    span = BACKLOG_FAULTS_S if plan.kill_every_s or plan.broker_pause_s else 0.0
                    publishing: asyncio.Task[object] = asyncio.create_task(asyncio.sleep(span))
                else:
                    span = plan.days / plan.speed
                    publishing = asyncio.create_task(publish_paced(settings, events, DEFAULT_START, plan.speed))
                await _faults(plan, crew, given.pid, publishing, span, outcome, say)
                await publishing
                await _end_of_stream(settings)

            asyncio.run(live())
            say(f"published; {crew.kills} kills; reading back")
            wanted = {alert_key(a) for a in expected}
            labelled = set(labels_due(want_labels, cut))
            alerts, got, labels = asyncio.run(_read_back(settings, wanted, labelled, plan.settle_s, say))
            dead = crew.dead()
            if dead:
                outcome.problems.append(f"workers {dead} died")
        finally:
            if crew is not None:
                codes = crew.stop()
                outcome.kills = crew.kills
                if any(code not in (0, None) for code in codes):
                    outcome.problems.append(f"workers stopped with {codes}")
    compare_alerts(expected, [a for a in alerts if a.triggered_at <= cut], outcome)
    compare_states(want_states, got, outcome)
    compare_labels(want_labels, labels, cut, outcome)
    outcome.seconds = time.monotonic() - began
    return outcome


def _interrupted(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: the cleanup that follows must not be cut short
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="the short form (CI): a few kills, minutes")
    parser.add_argument("--runs", type=int, default=1, help="runs in a row (each with the next seed)")
    parser.add_argument("--customers", type=int)
    parser.add_argument("--days", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--speed", type=float, help="simulated days per second")
    parser.add_argument("--workers", type=int)
    parser.add_argument("--store", choices=["memory://", "rocksdb://"])
    parser.add_argument("--broker", choices=["kafka", "embedded"])
    parser.add_argument("--no-kills", action="store_true")
    parser.add_argument("--no-pause", action="store_true", help="never stop the broker")
    parser.add_argument("--backlog", action="store_true", help="publish everything before the workers start")
    parser.add_argument("--keep", type=Path,
                        help="keep the run folders (logs, outcome.json) here; without it a clean run's is removed")
    args = parser.parse_args(argv)
    plan = SHORT if args.short else Plan()
    changes = {k: v for k, v in {"customers": args.customers, "days": args.days, "seed": args.seed,
                                 "speed": args.speed, "workers": args.workers, "store": args.store,
                                 "broker": args.broker}.items() if v is not None}
    if args.no_kills:
        changes["kill_every_s"] = None
    if args.no_pause:
        changes["broker_pause_s"] = 0.0
    if args.backlog:
        changes["backlog"] = True
    plan = replace(plan, **changes)
    logging.getLogger("aiokafka").setLevel(logging.ERROR)  # its retries while the broker is stopped are expected
    # A SIGTERM stops the run the way Ctrl-C does, so the broker and the workers it started are stopped too.
    signal.signal(signal.SIGTERM, _interrupted)
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    failed = 0
    for run in range(args.runs):
        this = replace(plan, seed=plan.seed + run)
        folder = Path(tempfile.mkdtemp(prefix="churnwatch-chaos-", dir=args.keep))
        stamp = time.monotonic()

        def say(text: str, stamp: float = stamp) -> None:  # this run's start
            print(f"[{time.monotonic() - stamp:6.1f}s] {text}", file=sys.stderr, flush=True)

        outcome = run_chaos(this, folder, say)
        print(outcome.line(), flush=True)
        if not outcome.clean:
            failed += 1
            details = {"missing": outcome.missing[:20], "extra": outcome.extra[:20], "unlike": outcome.unlike[:20],
                       "repeats unlike the first": outcome.repeats_unlike[:10],
                       "states unlike the replay's": outcome.states_unlike[:20],
                       "labels missing": outcome.labels_missing[:10], "labels extra": outcome.labels_extra[:10],
                       "labels unlike the replay's": outcome.labels_unlike[:10], "problems": outcome.problems}
            print(json.dumps(details, indent=1), file=sys.stderr)
            for log_file in sorted(folder.glob("worker-*.log")):  # CI keeps only the output: what the workers said
                said = [line.rstrip()[:300] for line in log_file.read_text(errors="replace").splitlines()
                        if "] [^" not in line and line.startswith("[")]
                print(f"{log_file.name}, its last lines of churnwatch's own:", *said[-12:], sep="\n  ", file=sys.stderr)
            print(f"logs kept in {folder}", file=sys.stderr)
        (folder / "outcome.json").write_text(json.dumps(asdict(outcome), indent=1, default=str))
        if outcome.clean and not args.keep:  # the broker's data and the logs: about 90 MB a run
            shutil.rmtree(folder, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
