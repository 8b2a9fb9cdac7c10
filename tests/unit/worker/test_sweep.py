"""The sweep: ticks for the customers due on this worker's partitions, the partitions' clocks, the lag metric."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from faust.types import TP
from prometheus_client import generate_latest

from churnwatch.due_index import DueIndex
from churnwatch.http.metrics import Metrics
from churnwatch.rules.clock_math import day_of, to_seconds
from churnwatch.settings import Settings
from churnwatch.testing import day
from churnwatch.worker.clock import EventClock
from churnwatch.worker.sweep import Sweeper, decode_tick, partition_clocks

SETTINGS = Settings(partitions=2, sweep_batch=100)
USAGE = SETTINGS.topic_usage
TICKS = SETTINGS.topic_sweep_ticks


@dataclass
class Consumer:
    assigned: set[TP] = field(default_factory=set)
    ends: dict[TP, int] = field(default_factory=dict)
    _committed_offset: dict[TP, int] = field(default_factory=dict)

    def assignment(self) -> set[TP]:
        return self.assigned

    def highwater(self, tp: TP) -> int:
        return self.ends[tp]


@dataclass
class App:
    consumer: Consumer
    rebalancing: bool = False


class Ticks:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any, int]] = []

    async def send(self, key: bytes, value: bytes, partition: int) -> None:
        self.sent.append((key, decode_tick(value), partition))


def _owning(*partitions: int) -> Consumer:
    consumer = Consumer()
    for p in partitions:
        consumer.assigned |= {TP(TICKS, p), TP(USAGE, p)}
        consumer.ends[TP(USAGE, p)] = 0
    return consumer


def _sweeper(consumer: Consumer,
             covers: Any = lambda at: False) -> tuple[Sweeper, DueIndex, Ticks, Metrics, EventClock]:
    wall = [0.0]
    clock = EventClock(idle_s=1.0, monotonic=lambda: wall[0])
    index, ticks, metrics = DueIndex(), Ticks(), Metrics()
    sweeper = Sweeper(App(consumer), SETTINGS, clock, index, ticks, metrics, covers)
    return sweeper, index, ticks, metrics, clock


def test_a_sweep_ticks_the_due_customers_of_its_own_partitions_up_to_its_time_and_then_each_partitions_clock() -> None:
    sweeper, index, ticks, _, clock = _sweeper(_owning(0))
    clock.observe((USAGE, 0), 0, day(10))
    index.set("due", to_seconds(day(4)), 0)
    index.set("later", to_seconds(day(12)), 0)
    index.set("elsewhere", to_seconds(day(3)), 1)  # not this worker's partition: its owner judges it
    asyncio.run(sweeper.sweep(customers=3))
    customers = [(key, tick.now, tick.until) for key, tick, _ in ticks.sent if not tick.clock]
    assert customers == [(b"due", day(4), day(10))]
    clocks = [(tick.now, partition) for _, tick, partition in ticks.sent if tick.clock]
    # The partition's clock is held back by the tick in flight: what it publishes must come out first.
    assert clocks == [(day(4), 0)]
    assert sweeper.ticking == {(0, "due"): to_seconds(day(4))}
    sweeper.ticked(0, "due")
    ticks.sent.clear()
    asyncio.run(sweeper.sweep(customers=3))
    assert [(tick.now, p) for _, tick, p in ticks.sent if tick.clock] == [(day(10), 0)]
    assert [e.customer_id for e in index.pop_due(10**12, 10)] == ["later"]  # "elsewhere" left for its owner


def test_no_sweep_while_the_clock_waits_for_a_partition_with_records_not_read() -> None:
    consumer = _owning(0)
    consumer.ends[TP(USAGE, 0)] = 5  # five records waiting, none read
    sweeper, index, ticks, _, _ = _sweeper(consumer)
    index.set("due", to_seconds(day(1)), 0)
    asyncio.run(sweeper.sweep(customers=1))
    assert ticks.sent == [] and len(index) == 1


def test_a_waiting_snapshot_gets_one_tick_once_its_model_version_is_made() -> None:
    made = {"week": False}
    sweeper, _, ticks, _, clock = _sweeper(_owning(0), covers=lambda at: made["week"])
    clock.observe((USAGE, 0), 0, day(20))
    sweeper.wait("acme", 0, to_seconds(day(14)))
    asyncio.run(sweeper.sweep(customers=1))
    assert [t for _, t, _ in ticks.sent if not t.clock] == []
    # Its assessment is not out: the partition's clock stays at the snapshot's time.
    assert [t.now for _, t, _ in ticks.sent if t.clock] == [day(14)]
    made["week"] = True
    ticks.sent.clear()
    asyncio.run(sweeper.sweep(customers=1))
    assert [(k, t.now) for k, t, _ in ticks.sent if not t.clock] == [(b"acme", day(14))]
    sweeper.wait("acme", 0, None)
    sweeper.ticked(0, "acme")
    ticks.sent.clear()
    asyncio.run(sweeper.sweep(customers=1))
    assert [t.now for _, t, _ in ticks.sent if t.clock] == [day(20)]


def test_the_lag_metric_drops_the_partitions_the_worker_no_longer_reads() -> None:
    consumer = _owning(0, 1)
    consumer.ends[TP(USAGE, 0)] = 7
    consumer.ends[TP(USAGE, 1)] = 3
    sweeper, _, _, metrics, _ = _sweeper(consumer)
    sweeper.read(USAGE, 0, 1)
    asyncio.run(sweeper.sweep(customers=0))
    exported = generate_latest(metrics.registry).decode()
    assert f'churnwatch_consumer_lag_messages{{partition="0",topic="{USAGE}"}} 5.0' in exported
    assert f'churnwatch_consumer_lag_messages{{partition="1",topic="{USAGE}"}} 3.0' in exported
    consumer.assigned = {TP(TICKS, 1), TP(USAGE, 1)}  # a rebalance took partition 0 away
    asyncio.run(sweeper.sweep(customers=0))
    exported = generate_latest(metrics.registry).decode()
    assert f'partition="0",topic="{USAGE}"' not in exported
    assert f'churnwatch_consumer_lag_messages{{partition="1",topic="{USAGE}"}} 3.0' in exported


def test_no_sweep_during_a_rebalance() -> None:
    consumer = _owning(0)
    sweeper, index, ticks, _, clock = _sweeper(consumer)
    clock.observe((USAGE, 0), 0, day(10))
    index.set("due", to_seconds(day(4)), 0)
    sweeper.app.rebalancing = True
    asyncio.run(sweeper.sweep(customers=1))
    assert ticks.sent == []


def test_partition_clocks_are_the_sweeps_time_held_back_by_what_is_still_to_publish() -> None:
    now = to_seconds(day(10))
    assert partition_clocks(now, {0, 1}, [], None) == {0: now, 1: now}
    held = partition_clocks(now, {0, 1}, [(0, to_seconds(day(4))), (0, to_seconds(day(6))), (3, 0)], None)
    assert held == {0: to_seconds(day(4)), 1: now}  # a partition not owned holds nothing here
    # The sweep's batch was full: what it left due holds every partition back.
    assert partition_clocks(now, {0, 1}, [], to_seconds(day(8))) == {0: to_seconds(day(8)), 1: to_seconds(day(8))}
    assert day_of(partition_clocks(now, {1}, [(1, now + 5)], None)[1]) == day_of(now)
