"""``make soak``: a million events through one worker on the embedded broker.

What it proves: every message published is accounted for, as a processed
event or as a rejection with its reason (and a dead letter), and the worker's
memory stops growing once every customer's kept windows are full. Bad
messages are mixed in so the rejection path runs for the whole soak too.

The customer base is fixed (2,000 by default) so that a leak shows as growth:
state per customer is bounded, by the rules' windows (60 days of event time,
17% of a million events at one every 30 s) and by the 128 remembered event
ids (a customer's 128th event comes at about 26% with 500 events each). So
the warm-up is the first 30% of the messages; after it, memory must stay flat.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from bench.broker import fresh_settings, mix, scrape
from bench.pure import rss_bytes
from churnwatch.schemas.events import UsageEvent
from churnwatch.schemas.intake import Rejection, decode_event
from churnwatch.dev.embedded_broker import WORKER_TUNING, EmbeddedBroker
from churnwatch.kafka.publisher import encode
from churnwatch.settings import Settings
from churnwatch.kafka.topics import ensure_topics
from churnwatch.dev.worker_process import WorkerProcess

SECONDS_PER_EVENT = 30  # event time between two published events (bench.broker.mix)
Say = Callable[[str], None]


@dataclass
class SoakResult:
    planned: int = 0  # messages to publish: the events and the bad messages among them
    published: int = 0
    expected_rejections: dict[str, int] = field(default_factory=dict)
    consumed: dict[str, int] = field(default_factory=dict)  # by outcome: applied, duplicate, too_old
    rejected: dict[str, int] = field(default_factory=dict)  # by reason
    dead_letters: int = 0
    exit_code: int | None = None
    seconds: float = 0.0  # all of it, the dead-letter count and the worker's stop included
    worker_seconds: float = 0.0  # from the worker's start until the last round was accounted for
    # (messages processed or rejected so far, worker RSS in bytes), about every second.
    memory: list[tuple[int, int]] = field(default_factory=list)

    @property
    def accounted(self) -> int:
        return sum(self.consumed.values()) + sum(self.rejected.values())


def bad_messages(customers: int, start: datetime) -> Iterator[tuple[bytes | None, bytes]]:
    """Messages the intake refuses, one of each kind in turn (oversized ones are left to the bad-input test)."""
    for n in itertools.count():
        customer = f"b{n % customers:06d}".encode()
        good = UsageEvent(event_id=f"bad{n}", customer_id=customer.decode(), occurred_at=start, kind="login")
        key, value = encode(good)
        yield from (
            (customer, b"{not json"),
            (customer, b"\xff\xfe not utf-8 \xc3\x28"),
            (b"someone-else", value),  # key and customer_id disagree
            (None, value),  # no key
            (key, value.replace(b'"usage"', b'"refund"')),  # unknown type
            (key, value.replace(b'"event_id"', b'"event_ref"')),  # a required field missing
        )


def messages(settings: Settings, events: int, customers: int, bad_every: int, start: datetime,
             expected: Counter[str]) -> Iterator[tuple[str, bytes | None, bytes]]:
    """(topic, key, value): ``events`` good events with a bad message after every ``bad_every``,
    counting in ``expected`` the reason the pure intake gives each bad one."""
    bad = bad_messages(customers, start)
    for n, event in enumerate(mix(events, customers, seed=11, start=start), start=1):
        key, value = encode(event)
        yield settings.topic_for(event.type), key, value
        if bad_every and n % bad_every == 0:
            bad_key, bad_value = next(bad)
            rejection = decode_event(bad_key, bad_value, settings.max_message_bytes)
            assert isinstance(rejection, Rejection), bad_value
            expected[rejection.reason.value] += 1
            yield settings.input_topics[(n // bad_every) % len(settings.input_topics)], bad_key, bad_value


async def dead_letter_count(settings: Settings) -> int:
    """Records on the dead-letter topic, by its partitions' end offsets."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([settings.topic_dead_letters])
    finally:
        await admin.close()
    partitions = [TopicPartition(settings.topic_dead_letters, p["partition"]) for p in described["partitions"]]
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=None)
    await consumer.start()
    try:
        # Assigned, so the client asks for these partitions' metadata: a new client knows no
        # topic until it does (Apache Kafka, unlike the embedded broker, sends none unasked).
        consumer.assign(partitions)
        return sum((await consumer.end_offsets(partitions)).values())
    finally:
        await consumer.stop()


def _read_counts(settings: Settings, result: SoakResult) -> None:
    consumed: Counter[str] = Counter()
    rejected: Counter[str] = Counter()
    for sample in scrape(settings):
        if sample.name == "churnwatch_events_consumed_total":
            consumed[sample.labels["outcome"]] += int(sample.value)
        elif sample.name == "churnwatch_events_rejected_total":
            rejected[sample.labels["reason"]] += int(sample.value)
    result.consumed, result.rejected = dict(consumed), dict(rejected)


class Soak:
    """One soak: the worker, the counts and the memory samples, followed as rounds are published."""

    def __init__(self, settings: Settings, worker: WorkerProcess, stall_s: float, say: Say) -> None:
        self.settings, self.worker, self.stall_s, self.say = settings, worker, stall_s, say
        self.result = SoakResult()
        self._last_said = 0.0

    async def publish_in_rounds(self, stream: Iterator[tuple[str, bytes | None, bytes]], round_size: int) -> bool:
        """Publish a round, wait until the worker has accounted for it, then the next: False if it stalled."""
        producer = AIOKafkaProducer(bootstrap_servers=self.settings.bootstrap_servers, linger_ms=20,
                                    max_batch_size=262_144)
        await producer.start()
        try:
            while batch := list(itertools.islice(stream, round_size)):
                for topic, key, value in batch:
                    await producer.send(topic, value=value, key=key)
                await producer.flush()
                self.result.published += len(batch)
                if not await self.until_accounted():
                    return False
            return True
        finally:
            await producer.stop()

    async def until_accounted(self) -> bool:
        result, worker = self.result, self.worker
        assert worker.pid is not None
        last_change, last_total = time.monotonic(), result.accounted
        while result.accounted < result.published:
            if not worker.alive() or time.monotonic() - last_change > self.stall_s:
                return False
            await asyncio.sleep(1.0)
            try:
                _read_counts(self.settings, result)
            except OSError:  # not serving yet
                continue
            result.memory.append((result.accounted, rss_bytes(worker.pid)))
            if result.accounted != last_total:
                last_change, last_total = time.monotonic(), result.accounted
            if time.monotonic() - self._last_said >= 30:
                self._last_said = time.monotonic()
                self.say(f"  worker: {result.accounted:,} of {result.planned:,} messages accounted for, "
                         f"RSS {result.memory[-1][1] / 2**20:,.0f} MiB")
        return True


def run_soak(bootstrap: str, workdir: Path, events: int, customers: int, worker_env: dict[str, str],
             bad_every: int = 200, round_size: int = 10_000, stall_s: float = 120.0, say: Say = print) -> SoakResult:
    """Feed one worker in rounds of ``round_size`` messages, each published once the last is accounted for.

    Rounds keep the four topics within a round of each other, as live
    traffic is; a backlog published all at once would be read with the
    small topics months ahead of the usage topic (see docs/guarantees.md).
    Stops early when nothing moves for ``stall_s`` seconds or the worker dies.
    """
    began = time.monotonic()
    settings = fresh_settings(bootstrap, workdir / "data")
    # Event times end an hour ago: the worker refuses events a day ahead of the wall clock.
    start = datetime.now(UTC) - timedelta(seconds=events * SECONDS_PER_EVENT, hours=1)
    asyncio.run(ensure_topics(settings))
    worker = WorkerProcess(settings, workdir / "worker.log", worker_env).start()
    worker_began = time.monotonic()
    soak = Soak(settings, worker, stall_s, say)
    result = soak.result
    result.planned = events + (events // bad_every if bad_every else 0)
    expected: Counter[str] = Counter()
    try:
        stream = messages(settings, events, customers, bad_every, start, expected)
        done = asyncio.run(soak.publish_in_rounds(stream, round_size))
        result.expected_rejections = dict(expected)
        result.worker_seconds = round(time.monotonic() - worker_began, 1)
        say(f"  worker: {result.accounted:,} of {result.published:,} messages accounted for")
        if done:
            # Anything counted after the last message would be a message counted twice.
            time.sleep(5.0)
            _read_counts(settings, result)
            deadline = time.monotonic() + 30
            result.dead_letters = asyncio.run(dead_letter_count(settings))
            while result.dead_letters < sum(result.rejected.values()) and time.monotonic() < deadline:
                time.sleep(1.0)
                result.dead_letters = asyncio.run(dead_letter_count(settings))
    finally:
        result.exit_code = worker.stop()
        result.seconds = round(time.monotonic() - began, 1)
    if not result.memory or result.accounted < result.published:
        say(worker.log_text()[-3000:])
    return result


def memory_growth(result: SoakResult, warmup: float) -> tuple[int, int, int]:
    """(RSS when the warm-up ended, highest RSS after it, last RSS), in bytes."""
    after = [rss for done, rss in result.memory if done >= warmup * result.published]
    if not after:
        return 0, 0, 0
    return after[0], max(after), after[-1]


def problems(result: SoakResult, warmup: float = 0.3, tolerance: float = 0.10,
             judge_memory: bool = True) -> list[str]:
    """What the soak found wrong; empty when every count balances (and memory stayed flat)."""
    found = []
    if result.published != result.planned:
        found.append(f"stopped after publishing {result.published:,} of {result.planned:,} messages")
    if result.accounted != result.published:
        found.append(f"{result.published:,} messages in, {result.accounted:,} processed or rejected")
    if result.rejected != result.expected_rejections:
        found.append(f"rejections by reason {result.rejected}, expected {result.expected_rejections}")
    if result.dead_letters != sum(result.rejected.values()):
        found.append(f"{result.dead_letters:,} dead letters for {sum(result.rejected.values()):,} rejections")
    if result.consumed.get("duplicate", 0):
        found.append(f"{result.consumed['duplicate']:,} events processed twice (no event was published twice)")
    if result.exit_code != 0:
        found.append(f"worker exit code {result.exit_code} after SIGTERM")
    if judge_memory:
        base, peak, _ = memory_growth(result, warmup)
        if not base:
            found.append("no memory sample after the warm-up")
        elif peak > base * (1 + tolerance):
            found.append(f"RSS grew {100 * (peak / base - 1):.1f}% after the warm-up "
                         f"({base / 2**20:,.0f} -> {peak / 2**20:,.0f} MiB; at most {100 * tolerance:.0f}%)")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--bad-every", type=int, default=200, help="a bad message after every N events")
    parser.add_argument("--round-size", type=int, default=10_000,
                        help="messages per round; at least all of them: one backlog, published at once")
    parser.add_argument("--warmup", type=float, default=0.3, help="share of the messages counted as warm-up")
    parser.add_argument("--tolerance", type=float, default=0.10, help="RSS growth allowed after the warm-up")
    parser.add_argument("--out", default="soak-results.json")
    args = parser.parse_args()
    # A SIGTERM unwinds like Ctrl-C, so the broker and workers we started are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        result = run_soak(broker.bootstrap_servers, Path(tmp), args.events, args.customers, WORKER_TUNING,
                          args.bad_every, args.round_size, say=lambda line: print(line, flush=True))
    base, peak, last = memory_growth(result, args.warmup)
    print(f"\nsoak: {result.published:,} messages in {result.seconds:,.0f} s")
    print(f"  processed by outcome   {result.consumed}")
    print(f"  rejected by reason     {result.rejected}")
    print(f"  dead letters written   {result.dead_letters:,}")
    print(f"  in = processed + rejected: {result.published:,} = {result.accounted:,}")
    print(f"  worker RSS: {base / 2**20:,.0f} MiB after the warm-up ({args.warmup:.0%} of the messages), "
          f"highest after it {peak / 2**20:,.0f} MiB, at the end {last / 2**20:,.0f} MiB")
    for decile in range(1, 11):
        at = [rss for done, rss in result.memory if done >= decile / 10 * result.published]
        if at:
            print(f"    RSS at {decile * 10:>3}% processed: {at[0] / 2**20:,.0f} MiB")
    if result.worker_seconds:
        print(f"  {result.published / result.worker_seconds:,.0f} messages/s over {result.worker_seconds:,.0f} s "
              "(start-up and publishing in rounds included)")
    Path(args.out).write_text(json.dumps(asdict(result), indent=1) + "\n")
    found = problems(result, args.warmup, args.tolerance)
    for problem in found:
        print(f"  PROBLEM: {problem}")
    print("soak passed" if not found else "soak FAILED")
    return 0 if not found else 1


if __name__ == "__main__":
    raise SystemExit(main())
