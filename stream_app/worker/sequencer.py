"""Between the agent and the processor: input events in event-time order, each message held until its state is written.

Every message the agent takes comes here, is decoded, and waits in the
merge (``churnwatch.worker.merge``) until nothing older can come: an input
event at its event time, a sweep tick at the time it judges up to (a tick
the partition's previous owner sent waits for the events before it that
this worker has still to read). What the merge lets go is processed in that
order, then held, unacknowledged, until the changelog writer has written
the states it changed (``ChangelogWriter.hold``).

The merge is looked at again every ``poll_s`` as well as on every message:
a head may go on because a fetch came back with nothing older, with no new
message to say so.

A message the merge lets go (a repeat, or one past a gap) is never
acknowledged, and Faust stops waiting for it; a gap, a message the client
handed over that never arrived, has its partition read again from there.

One message at a time goes through the processor (a lock), whether the
agent or the poll lets it go: a customer's state has one writer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, cast

from churnwatch.schemas.events import Event
from churnwatch.schemas.intake import Rejection, decode_event
from churnwatch.worker.changelog import Acknowledger, ChangelogWriter
from churnwatch.worker.faust_private import let_go, read_again
from churnwatch.worker.merge import Arrival, Decoded, EventTimeMerge, Held
from churnwatch.worker.processor import Processor
from churnwatch.worker.sweep import SweepTick, decode_tick

log = logging.getLogger(__name__)

WAIT_LOG_S = 30.0  # how often a merge held up by one partition says so


class Sequencer:
    def __init__(self, processor: Processor, merge: EventTimeMerge, poll_s: float = 0.02) -> None:
        self.processor = processor
        self.app = processor.app
        self.states: ChangelogWriter = processor.states
        self.merge = merge
        self.poll_s = poll_s
        self.ticks = processor.settings.topic_sweep_ticks
        self.max_bytes = processor.settings.max_message_bytes
        self._lock = asyncio.Lock()
        self._stream: Acknowledger | None = None
        self._waiting_since: float | None = None
        self._waited_on: tuple[str, int] | None = None
        self._last_said = 0.0

    async def receive(self, stream: Acknowledger, message_event: Any) -> None:
        """One message from the agent."""
        self._stream = stream
        message = message_event.message
        decoded: Decoded = (decode_tick(message.value) if message.topic == self.ticks
                            else decode_event(message.key, message.value, self.max_bytes))
        source = (message.topic, message.partition)
        arrival, offset = self.merge.add(source, message.offset, message_event, decoded)
        if arrival is not Arrival.QUEUED:
            let_go(self.app, message)
        if arrival is Arrival.GAP:
            await self._read_again(source, offset, f"offset {message.offset} came in, {offset} never did")
        await self.release(message.partition)

    async def release(self, partition: int | None = None) -> None:
        """Process whatever the merge lets go now, in its order (of ``partition``'s group only, or of all)."""
        stream = self._stream
        if stream is None or not len(self.merge):
            return
        async with self._lock:
            for held in self.merge.take(partition):
                await self._process(stream, held)
            self.processor.metrics.merging.set(len(self.merge))
            self._say_why_waiting()

    async def run(self) -> None:
        """Look at the merge every ``poll_s``: its heads may go on with no new message to wake it."""
        while True:
            await asyncio.sleep(self.poll_s)
            for source, offset in self.merge.stuck():
                await self._read_again(source, offset, f"it has not come in for {self.merge.stuck_s:.0f} s")
            await self.release()

    async def _read_again(self, source: tuple[str, int], offset: int, why: str) -> None:
        """A message the client handed over never reached the agent: read its partition again from it."""
        log.warning("%s[%d] is read again from offset %d: %s (nothing after it is processed before it)",
                    source[0], source[1], offset, why)
        self.processor.metrics.read_again.labels(source[0]).inc()
        await read_again(self.app, source, offset)

    def fetched(self, batch: dict[tuple[str, int], list[int]]) -> None:
        """The Kafka client handed these offsets to Faust, per partition."""
        for source, offsets in batch.items():
            self.merge.fetched(source, offsets)
        self.merge.returned()

    def drop(self) -> list[Any]:
        """A rebalance: what waits in the merge is let go unprocessed (read again from the committed offsets);
        returns Faust's messages, for Faust to stop waiting for their acknowledgement."""
        dropped = self.merge.drop()
        self.processor.metrics.merging.set(0)
        if dropped:
            log.info("%d messages waiting in the merge dropped at a rebalance: read again from the committed "
                     "offsets", len(dropped))
        return [held.message.message for held in dropped]

    async def _process(self, stream: Acknowledger, held: Held) -> None:
        # The merge holds what this sequencer gave it: events, rejections and sweep ticks.
        await self.processor.handle(held.message, cast("Event | SweepTick | Rejection", held.decoded), held.late)
        if self.states.hold(stream, held.message):
            await self.states.write()

    def _say_why_waiting(self) -> None:
        """A merge held up by one partition says which, once it has waited a while, then every ``WAIT_LOG_S``."""
        waited_on = self.merge.waited_on
        wall = time.monotonic()
        if waited_on is None or waited_on != self._waited_on:
            self._waited_on = waited_on
            self._waiting_since = None if waited_on is None else wall
            self._last_said = wall
        elif self._waiting_since is not None and wall - self._last_said >= WAIT_LOG_S:
            self._last_said = wall
            view = self.merge.view
            log.info("the merge has waited %.0f s for %s[%d]: end offset %s, position %s; %d messages wait",
                     wall - self._waiting_since, waited_on[0], waited_on[1], view.highwater(waited_on),
                     view.position(waited_on), len(self.merge))
