"""Between the agent and the processor: input events in event-time order, each message held until its state is written.

Every message the agent takes comes here. A sweep tick goes on at once (a
tick judges only what is due up to its time, so where it falls among the
customer's events changes nothing). An input message is decoded and waits
in the merge (``churnwatch.worker.merge``) until nothing older can come;
what the merge lets go is processed in that order. Either way the message
is then held, unacknowledged, until the changelog writer has written the
states it changed (``ChangelogWriter.hold``).

The merge is looked at again every ``poll_s`` as well as on every message:
a head may go on because a fetch came back with nothing older, or its wait
ran out, with no new message to say so.

One message at a time goes through the processor (a lock), whether the
agent or the poll lets it go: a customer's state has one writer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from churnwatch.schemas.intake import decode_event
from churnwatch.worker.changelog import Acknowledger, ChangelogWriter
from churnwatch.worker.merge import EventTimeMerge, Held
from churnwatch.worker.processor import Processor

log = logging.getLogger(__name__)

WAIT_LOG_S = 30.0  # how often a merge held up by one partition says so


class Sequencer:
    def __init__(self, processor: Processor, merge: EventTimeMerge, poll_s: float = 0.02) -> None:
        self.processor = processor
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
        if message.topic == self.ticks:
            async with self._lock:
                await self._process(stream, message_event, None)
            return
        decoded = decode_event(message.key, message.value, self.max_bytes)
        self.merge.add((message.topic, message.partition), message.offset, message_event, decoded)
        await self.release()

    async def release(self) -> None:
        """Process whatever the merge lets go now, in its order."""
        stream = self._stream
        if stream is None or not len(self.merge):
            return
        async with self._lock:
            for held in self.merge.take():
                await self._process(stream, held.message, held)
            self.processor.metrics.merging.set(len(self.merge))
            self._say_why_waiting()

    async def run(self) -> None:
        """Look at the merge every ``poll_s``: its heads may go on with no new message to wake it."""
        while True:
            await asyncio.sleep(self.poll_s)
            await self.release()

    def drop(self) -> list[Any]:
        """A rebalance: what waits in the merge is let go unprocessed (read again from the committed offsets);
        returns Faust's messages, for Faust to stop waiting for their acknowledgement."""
        dropped = self.merge.drop()
        self.processor.metrics.merging.set(0)
        if dropped:
            log.info("%d messages waiting in the merge dropped at a rebalance: read again from the committed "
                     "offsets", len(dropped))
        return [held.message.message for held in dropped]

    async def _process(self, stream: Acknowledger, message_event: Any, held: Held | None) -> None:
        await self.processor.handle(message_event, None if held is None else held.decoded,
                                    held is not None and held.late)
        if self.states.hold(stream, message_event):
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
