"""What only a real Apache Kafka can show: a compacted changelog, and lag against the broker's own numbers.

The embedded broker never compacts and answers end offsets wrong after
multi-record batches, so these run on the JVM broker (``make test-kafka``)
and are skipped on the embedded one.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from aiokafka.partitioner import DefaultPartitioner
from prometheus_client.parser import text_string_to_metric_families

from churnwatch.worker.app import STATE_TABLE
from churnwatch.settings import Settings
from churnwatch.kafka.reader import collect
from churnwatch.kafka.topics import ensure_topics
from churnwatch.dev.embedded_broker import free_port
from churnwatch.dev.worker_process import WorkerProcess
from tests.support.brokers import Broker, chosen_broker, own_broker
from tests.support.states import changelog_states, replayed_facts
from tests.support.worker import (
    committed_to_the_end, end_offsets_and_committed, events_applied, http_get, make_settings, metric_total,
    publish_events, running_worker, wait_for,
)
from churnwatch.testing.events import day, login, usage

pytestmark = [
    pytest.mark.integration,
    pytest.mark.broker,
    pytest.mark.skipif(chosen_broker() != "kafka", reason="needs Apache Kafka (make test-kafka): the embedded "
                       "broker never compacts and answers end offsets wrong after multi-record batches"),
]

WAIT_S = 120.0
CUSTOMERS = 20
ROUNDS = 6
# A broker that compacts at once: a write 100 ms after the last starts a new segment (the rounds
# below are seconds apart), and any dirt is worth cleaning.
EAGER_CLEANER = {
    "log.roll.ms": "100",
    "log.cleaner.backoff.ms": "500",
    "log.cleaner.min.cleanable.ratio": "0.01",
    "log.cleaner.min.compaction.lag.ms": "0",
    "log.segment.delete.delay.ms": "500",
}


def _round(n: int) -> list:
    return [e for c in range(CUSTOMERS)
            for e in (login(day(n), f"compact-{c}"), usage(day(n), quantity=n + 1, customer=f"compact-{c}"))]


def _changelog_records(settings: Settings) -> int:
    changelog = f"{settings.app_id}-{STATE_TABLE}-changelog"
    return len(asyncio.run(collect(settings.bootstrap_servers, changelog, lambda rs: False, 5.0)))


def test_a_compacted_changelog_restores_every_state(tmp_path: Path) -> None:
    with own_broker("kafka", tmp_path / "broker", EAGER_CLEANER) as broker:
        settings = make_settings(broker, tmp_path / "data")
        asyncio.run(ensure_topics(settings))
        published = []
        with WorkerProcess(settings, tmp_path / "first.log") as first:
            for n in range(ROUNDS):  # each round is one more version of every customer's state
                events = _round(n)
                publish_events(settings, events)
                published += events
                count = len(published)
                assert wait_for(lambda count=count: events_applied(settings) == count, WAIT_S), \
                    first.log_text()[-3000:]
            written = ROUNDS * CUSTOMERS
            # Kafka has compacted: fewer records than versions written, every customer still there.
            assert wait_for(lambda: _changelog_records(settings) <= written // 2, WAIT_S), _changelog_records(settings)
        assert first.process is not None and first.process.returncode == 0, first.log_text()[-3000:]

        with WorkerProcess(settings, tmp_path / "second.log") as second:  # recovers from the compacted log
            assert wait_for(lambda: http_get(settings, "/readyz")[0] == 200, WAIT_S), second.log_text()[-3000:]
            last = _round(ROUNDS)
            publish_events(settings, last)  # lands on each customer's newest state, or shows it missing
            want = replayed_facts(published + last)
            got = changelog_states(settings, want, second.dead, WAIT_S)
            assert got == want, sorted(c for c in want if got.get(c) != want[c])


def _lag_metric(settings: Settings) -> dict[tuple[str, str], float]:
    text = http_get(settings, "/metrics")[1].decode()
    return {(s.labels["topic"], s.labels["partition"]): s.value for family in text_string_to_metric_families(text)
            for s in family.samples if s.name == "churnwatch_consumer_lag_messages"}


def test_lag_is_zero_where_the_broker_says_everything_was_read(broker: Broker, tmp_path: Path) -> None:
    with running_worker(broker, tmp_path) as (settings, worker):
        events = [e for c in range(50) for n in range(4)
                  for e in (login(day(n) + timedelta(hours=c), f"lag-{c}"),)]
        publish_events(settings, events)
        assert wait_for(lambda: events_applied(settings) == len(events), WAIT_S), worker.log_text()[-3000:]

        # The group commits what the worker acknowledged: at the end, the broker's end offsets.
        assert wait_for(lambda: committed_to_the_end(settings), WAIT_S), \
            asyncio.run(end_offsets_and_committed(settings))
        ends, _ = asyncio.run(end_offsets_and_committed(settings))
        usage_partitions = {str(tp.partition) for tp, end in ends.items() if tp.topic == settings.topic_usage and end}
        assert usage_partitions  # the events spread over the partitions
        every = {(settings.topic_usage, str(p)) for p in range(settings.partitions)}
        lag = wait_for(lambda: (m := _lag_metric(settings)) and every <= set(m) and m)
        assert lag, _lag_metric(settings)
        assert {key: lag[key] for key in every} == dict.fromkeys(every, 0.0)
        assert worker.alive()


def test_a_worker_that_joins_after_the_backlog_was_read_sweeps_its_partitions(broker: Broker, tmp_path: Path) -> None:
    """The second worker reads nothing: the first read and committed every event. Its partitions' time is
    then the newest event their states had applied. Without it the second worker never swept, never
    announced its partitions' clocks, and the group's model made no version past them (seen in CI: two
    workers sent none of the replay's model alerts)."""
    first = make_settings(broker, tmp_path / "one")
    second = first.model_copy(update={"data_dir": tmp_path / "two", "web_port": free_port()})
    asyncio.run(ensure_topics(first))
    partitioner = DefaultPartitioner()
    customers = [f"joiner-{c}" for c in range(12)]
    spread = {partitioner(c.encode(), list(range(first.partitions)), list(range(first.partitions))) for c in customers}
    assert spread == set(range(first.partitions))  # every partition has customers, whoever owns it
    events = [e for c in customers for n in range(10) for e in (login(day(n), c), usage(day(n), customer=c))]
    newest = max(e.occurred_at for e in events)
    with WorkerProcess(first, tmp_path / "first.log") as one:
        publish_events(first, events)
        assert wait_for(lambda: events_applied(first) == len(events), WAIT_S), one.log_text()[-3000:]
        assert wait_for(lambda: committed_to_the_end(first), WAIT_S), asyncio.run(end_offsets_and_committed(first))
        with WorkerProcess(second, tmp_path / "second.log") as two:
            swept = wait_for(lambda: metric_total(second, "churnwatch_sweep_time_seconds") >= newest.timestamp(),
                             WAIT_S)
            assert swept, (metric_total(second, "churnwatch_sweep_time_seconds"), two.log_text()[-3000:])
            assert events_applied(second) == 0  # it read nothing: the test is about a worker that reads nothing
