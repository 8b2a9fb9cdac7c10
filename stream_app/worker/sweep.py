"""The sweep: customers whose rules could change with no new event are judged on time.

The timer runs on every worker; it finds due customers in this worker's
index and sends each a tick to that customer's partition, where the agent
evaluates it like any message (so a customer's state has one writer). A tick
carries the due time, and the customer is judged at it, not at the sweep's
time: on the event clock weeks of history can pass between two sweeps, and a
silence that a cancellation ended a few days later must still be seen, as the
replay and the backtest see it.

After the customers' ticks, each owned partition gets a clock tick: when the
agent reaches it, everything the ticks before it published is out, and it
announces the partition's clock on the labels topic (the model's weekly
versions wait for every partition's; ``churnwatch.worker.labels``).

A customer whose weekly snapshot waits for its model version is kept aside
(``waiting``), not in the due index: the customer's other rules go on at
their own due times, and the snapshot is looked at again, with one tick,
once the model has made its version. Until then it holds its partition's
clock back (its assessment, which the next version ranks against, is not
out yet).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from faust.types import TP
from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError

from churnwatch.due_index import DueIndex
from churnwatch.http.metrics import Metrics
from churnwatch.rules.clock_math import day_of, to_datetime, to_seconds
from churnwatch.schemas.dead_letter import RejectReason
from churnwatch.schemas.intake import Rejection, describe
from churnwatch.settings import Settings
from churnwatch.worker.clock import Clock, Progress
from churnwatch.worker.faust_private import committed_offset, fetch_state

log = logging.getLogger(__name__)

WAIT_LOG_S = 30.0  # how often a sweep held back by a lagging partition says so


class SweepTick(BaseModel):
    """A sweep command: evaluate this message's customer at ``now``, and at each of its due times after
    that up to ``until`` (the sweep's time); or, with ``clock``, announce the partition's clock (``now``)
    once the ticks before it are processed."""

    model_config = ConfigDict(extra="forbid")
    now: AwareDatetime
    until: AwareDatetime | None = None
    clock: bool = False

    def merge_key(self) -> tuple[float, str]:
        """Its place among its partition's events (``churnwatch.worker.merge``): after every event up to the
        last time it judges at, before any event of that instant (either order judges the same)."""
        return ((self.until or self.now).timestamp(), "")


def encode_tick(now: datetime, clock: bool = False, until: datetime | None = None) -> bytes:
    return SweepTick(now=now, until=until, clock=clock).model_dump_json(exclude_defaults=True).encode()


def decode_tick(value: bytes | None) -> SweepTick | Rejection:
    try:
        return SweepTick.model_validate_json(value or b"")
    except ValidationError as exc:
        return Rejection(RejectReason.INVALID_SCHEMA, f"sweep tick: {describe(exc)}")


def partition_clocks(now: int, owned: set[int], holds: Iterable[tuple[int, int]],
                     more_due: int | None) -> dict[int, int]:
    """Per owned partition, the time its clock may announce: the sweep's, held back by any customer due.

    ``holds``: (partition, time) of the ticks sent and not yet processed
    (each may publish labels and assessments due up to its time) and of the
    snapshots waiting for their model version (their assessments are not
    out); ``more_due``: the earliest due time the sweep left for the next
    one (its batch was full), which holds every partition back.
    """
    clocks = dict.fromkeys(owned, now if more_due is None else min(now, more_due))
    for partition, at in holds:
        if partition in clocks:
            clocks[partition] = min(clocks[partition], at)
    return clocks


class Sweeper:
    """Finds this worker's due customers and sends their ticks; exports lag on the way."""

    def __init__(self, app: Any, settings: Settings, clock: Clock, index: DueIndex, ticks: Any,
                 metrics: Metrics, covers: Callable[[int], bool]) -> None:
        """``covers``: whether the model has made the version that scores a snapshot taken at a time."""
        self.app = app
        self.settings = settings
        self.clock = clock
        self.index = index
        self.ticks = ticks
        self.metrics = metrics
        self.read_next: dict[tuple[str, int], int] = {}  # next offset to process, per input partition
        self._lagged: set[tuple[str, int]] = set()  # the partitions the lag metric has a series of
        self.announced: dict[int, int] = {}  # the day of the last clock sent, per partition
        self.ticking: dict[tuple[int, str], int] = {}  # ticks sent, not yet processed: their due times
        self.waiting: dict[str, tuple[int, int]] = {}  # customer -> (partition, oldest snapshot waiting)
        self.covers = covers
        self._waiting_since: float | None = None  # since when the clock has held the sweep back
        self.swept_to: int | None = None  # the time the last sweep judged at (seconds)
        self._last_said = 0.0

    def read(self, topic: str, partition: int, offset: int) -> None:
        """A message was taken from an input partition (for the lag)."""
        self.read_next[(topic, partition)] = offset + 1

    def ticked(self, partition: int, customer_id: str) -> None:
        """A customer's tick was processed: it no longer holds its partition's clock back."""
        self.ticking.pop((partition, customer_id), None)

    def wait(self, customer_id: str, partition: int, pending_since: int | None) -> None:
        """Keep a customer aside while a snapshot waits for its model version (None: nothing waits)."""
        if pending_since is None:
            self.waiting.pop(customer_id, None)
        else:
            self.waiting[customer_id] = (partition, pending_since)

    async def sweep(self, customers: int) -> None:
        """Send a tick to each due customer this worker owns; others are not ours to judge."""
        if self.app.rebalancing:
            return
        started = time.perf_counter()
        assignment = self.app.consumer.assignment()
        owned = {tp.partition for tp in assignment if tp.topic == self.settings.topic_sweep_ticks}
        progress = {
            (tp.topic, tp.partition): self._progress(tp)
            for tp in assignment if tp.topic in self.settings.input_topics
        }
        self._export_lag(progress)
        self.metrics.customers.set(customers)
        self.metrics.due.set(len(self.index))
        now = self.clock.now(progress)
        if now is None:
            self._say_why_waiting()
            return
        self._waiting_since = None
        if not owned:
            return
        self.metrics.sweep_time.set(now.timestamp())
        self.swept_to = to_seconds(now)
        # Entries of partitions we no longer own are dropped: their new owner
        # rebuilt its own index from the changelog when it took them over.
        due = self.index.pop_due(to_seconds(now), self.settings.sweep_batch)
        sent = 0
        for entry in due:
            if entry.partition in owned:
                key = (entry.partition, entry.customer_id)
                self.ticking[key] = min(entry.due_at, self.ticking.get(key, entry.due_at))
                await self.ticks.send(key=entry.customer_id.encode(),
                                      value=encode_tick(to_datetime(entry.due_at), until=now),
                                      partition=entry.partition)
                sent += 1
        # Ticks to partitions this worker no longer owns are their new owner's to process.
        self.ticking = {key: at for key, at in self.ticking.items() if key[0] in owned}
        self.waiting = {customer: held for customer, held in self.waiting.items() if held[0] in owned}
        # Snapshots whose model version is made: one tick each scores them, as of their own time.
        scoring = 0
        for customer_id, (partition, since) in list(self.waiting.items()):
            if self.covers(since) and (partition, customer_id) not in self.ticking:
                self.ticking[(partition, customer_id)] = since
                await self.ticks.send(key=customer_id.encode(), value=encode_tick(to_datetime(since), until=now),
                                      partition=partition)
                scoring += 1
        more_due = self.index.next_due_at() if len(due) >= self.settings.sweep_batch else None
        holds = [*((p, at) for (p, _), at in self.ticking.items()), *self.waiting.values()]
        for partition, at in partition_clocks(to_seconds(now), owned, holds, more_due).items():
            # A clock says something new when it reaches a new day (the model's versions are by the week).
            if day_of(at) > self.announced.get(partition, -1):
                self.announced[partition] = day_of(at)
                await self.ticks.send(key=b"", value=encode_tick(to_datetime(at), clock=True), partition=partition)
        self.metrics.swept.inc(sent + scoring)
        self.metrics.sweep_duration.observe(time.perf_counter() - started)
        if sent or scoring:
            log.info("sweep at %s: %d customers due, %d snapshots to score with a new model version",
                     now.isoformat(), sent, scoring)

    def _say_why_waiting(self) -> None:
        """Log what holds the sweep back once it has waited a while, and again every ``WAIT_LOG_S`` after."""
        wall = time.monotonic()
        if self._waiting_since is None:
            self._waiting_since = self._last_said = wall
            return
        if wall - self._last_said >= WAIT_LOG_S:
            self._last_said = wall
            held_by = self.clock.held_by
            state = fetch_state(self.app.consumer, TP(*held_by)) if isinstance(held_by, tuple) else "?"
            log.info("the sweep has waited %.0f s for the partitions to catch up: %s (%s)",
                     wall - self._waiting_since, self.clock.waiting_on or "?", state)

    def _export_lag(self, progress: dict[tuple[str, int], Progress]) -> None:
        """Records waiting per input partition this worker reads (needs a fresh high watermark from the consumer).

        A partition the worker no longer reads leaves the metric: another
        worker exports it now, and a stale series would add its last lag to
        every sum by topic for good.
        """
        for gone in self._lagged - progress.keys():
            self.metrics.lag.remove(gone[0], str(gone[1]))
            self.read_next.pop(gone, None)
        self._lagged &= progress.keys()
        for (topic, partition), (highwater, committed) in progress.items():
            if highwater is None:
                continue
            read = self.read_next.get((topic, partition), committed or 0)
            self.metrics.lag.labels(topic, str(partition)).set(max(0, highwater - read))
            self._lagged.add((topic, partition))

    def _progress(self, tp: Any) -> Progress:
        consumer = self.app.consumer
        try:
            highwater = consumer.highwater(tp)
        except Exception:  # noqa: BLE001 - not fetched yet, or assignment moving
            highwater = None
        return Progress(highwater, committed_offset(consumer, tp))
