"""The sweep: customers whose rules could change with no new event are judged on time.

The timer runs on every worker; it finds due customers in this worker's
index and sends each a tick to that customer's partition, where the agent
evaluates it like any message (so a customer's state has one writer). A tick
carries the due time, and the customer is judged at it, not at the sweep's
time: on the event clock weeks of history can pass between two sweeps, and a
silence that a cancellation ended a few days later must still be seen, as the
replay and the backtest see it.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

from faust.types import TP
from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError

from churnwatch.due_index import DueIndex
from churnwatch.http.metrics import Metrics
from churnwatch.rules.clock_math import to_datetime, to_seconds
from churnwatch.schemas.dead_letter import RejectReason
from churnwatch.schemas.intake import Rejection, describe
from churnwatch.settings import Settings
from churnwatch.worker.clock import Clock, Progress
from churnwatch.worker.faust_private import committed_offset, fetch_state

log = logging.getLogger(__name__)

WAIT_LOG_S = 30.0  # how often a sweep held back by a lagging partition says so


class SweepTick(BaseModel):
    """A sweep command: evaluate this message's customer at ``now``."""

    model_config = ConfigDict(extra="forbid")
    now: AwareDatetime


def encode_tick(now: datetime) -> bytes:
    return SweepTick(now=now).model_dump_json().encode()


def decode_tick(value: bytes | None) -> datetime | Rejection:
    try:
        return SweepTick.model_validate_json(value or b"").now
    except ValidationError as exc:
        return Rejection(RejectReason.INVALID_SCHEMA, f"sweep tick: {describe(exc)}")


class Sweeper:
    """Finds this worker's due customers and sends their ticks; exports lag on the way."""

    def __init__(self, app: Any, settings: Settings, clock: Clock, index: DueIndex, ticks: Any,
                 metrics: Metrics) -> None:
        self.app = app
        self.settings = settings
        self.clock = clock
        self.index = index
        self.ticks = ticks
        self.metrics = metrics
        self.read_next: dict[tuple[str, int], int] = {}  # next offset to process, per input partition
        self._waiting_since: float | None = None  # since when the clock has held the sweep back
        self._last_said = 0.0

    def read(self, topic: str, partition: int, offset: int) -> None:
        """A message was taken from an input partition (for the lag)."""
        self.read_next[(topic, partition)] = offset + 1

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
        # Entries of partitions we no longer own are dropped: their new owner
        # rebuilt its own index from the changelog when it took them over.
        due = self.index.pop_due(to_seconds(now), self.settings.sweep_batch)
        sent = 0
        for entry in due:
            if entry.partition in owned:
                await self.ticks.send(key=entry.customer_id.encode(), value=encode_tick(to_datetime(entry.due_at)),
                                      partition=entry.partition)
                sent += 1
        self.metrics.swept.inc(sent)
        self.metrics.sweep_duration.observe(time.perf_counter() - started)
        if sent:
            log.info("sweep at %s: %d customers due", now.isoformat(), sent)

    def _say_why_waiting(self) -> None:
        """Log what holds the sweep back once it has waited a while, and again every ``WAIT_LOG_S`` after."""
        wall = time.monotonic()
        if self._waiting_since is None:
            self._waiting_since = self._last_said = wall
            return
        if wall - self._last_said >= WAIT_LOG_S:
            self._last_said = wall
            held_by = self.clock.held_by
            state = fetch_state(self.app.consumer, TP(*held_by)) if held_by is not None else "?"
            log.info("the sweep has waited %.0f s for the partitions to catch up: %s (%s)",
                     wall - self._waiting_since, self.clock.waiting_on or "?", state)

    def _export_lag(self, progress: dict[tuple[str, int], Progress]) -> None:
        """Records waiting per input partition (needs a fresh high watermark from the consumer)."""
        for (topic, partition), (highwater, committed) in progress.items():
            if highwater is None:
                continue
            read = self.read_next.get((topic, partition), committed or 0)
            self.metrics.lag.labels(topic, str(partition)).set(max(0, highwater - read))

    def _progress(self, tp: Any) -> Progress:
        consumer = self.app.consumer
        try:
            highwater = consumer.highwater(tp)
        except Exception:  # noqa: BLE001 - not fetched yet, or assignment moving
            highwater = None
        return Progress(highwater, committed_offset(consumer, tp))
