"""Batched changelog writes, and the acknowledgements that wait for them.

Each message is processed as it comes (its alerts are sent at once), but
changed states are written to the table, one changelog message per customer,
only every ``batch_max`` messages or ``batch_wait_s`` seconds, and the
messages are acknowledged only once the broker has confirmed that write. A
customer busy within the window costs one changelog message, not one per
event; a crash before the write leaves those offsets uncommitted, so the
messages are read again and the event ids make the repeat harmless.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from churnwatch.rules import CustomerState
from churnwatch.worker.state_cache import DecodedStates

log = logging.getLogger(__name__)


class Acknowledger(Protocol):
    """The agent's stream: acknowledging a message lets Faust commit its offset."""

    async def ack(self, event: Any) -> bool: ...


class ChangelogWriter:
    """The customer states of one worker: read through pending changes, written in batches."""

    def __init__(self, table: Any, batch_max: int, batch_wait_s: float, decoded: DecodedStates,
                 sent: Any = None) -> None:
        """``table``: the Faust table (``data``, ``get``, ``changelog_topic`` and its serializers);
        ``sent``: the table's callback for a confirmed changelog message."""
        self.table = table
        self.batch_max = batch_max
        self.batch_wait_s = batch_wait_s
        self.decoded = decoded
        self._sent = sent
        # States changed since the last write: customer -> (state, partition).
        self._unwritten: dict[str, tuple[CustomerState, int]] = {}
        # Processed messages not yet acknowledged: their states are in _unwritten.
        self._held: list[Any] = []
        self._stream: Acknowledger | None = None
        self._timer: asyncio.Task[None] | None = None
        self._writing = asyncio.Lock()

    def get(self, customer_id: str) -> CustomerState | None:
        unwritten = self._unwritten.get(customer_id)
        if unwritten is not None:
            return unwritten[0]
        raw = self.table.get(customer_id)
        return self.decoded.decode(customer_id, raw) if raw is not None else None

    def put(self, customer_id: str, state: CustomerState, partition: int) -> None:
        self._unwritten[customer_id] = (state, partition)

    def hold(self, stream: Acknowledger, message_event: Any) -> bool:
        """Keep a processed message unacknowledged until its state is written; True when it is time to write."""
        self._held.append(message_event)
        if self._timer is None:  # the first message: the agent's stream is known from now on
            self._stream = stream
            self._timer = asyncio.get_running_loop().create_task(self._keep_writing())
        return len(self._held) >= self.batch_max

    async def _keep_writing(self) -> None:
        """Write every ``batch_wait_s``.

        A plain task, not a Faust timer: at a rebalance or shutdown Faust
        waits for every message to be acknowledged, and its own services are
        stopping then; this keeps writing (and acknowledging) through it.
        """
        while True:
            await asyncio.sleep(self.batch_wait_s)
            await self.write()

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await self.write()

    async def write(self) -> None:
        """Write the changed states, wait until the broker has them, then acknowledge their messages.

        Faust commits only acknowledged offsets. The changelog messages are
        sent and awaited here, not left in Faust's send buffer
        (``table.send_changelog``): the flush before a commit gives up on that
        buffer after 0.1 s without progress, so an offset could be committed
        while its state was still buffered, and a crash then lost the state.
        One write at a time, so a customer's states reach the changelog in order.
        """
        async with self._writing:
            unwritten, self._unwritten = self._unwritten, {}
            held, self._held = self._held, []
            table = self.table
            # Into the table before the first await: reads go to the table for
            # whatever is no longer in _unwritten.
            encoded = []
            for customer_id, (state, partition) in unwritten.items():
                raw = state.to_bytes()
                table.data[customer_id] = raw
                self.decoded.remember(customer_id, raw, state)
                encoded.append((customer_id, raw, partition))
            try:
                sent = [
                    await table.changelog_topic.send(
                        key=customer_id, value=raw, partition=partition,
                        key_serializer=table.key_serializer, value_serializer=table.value_serializer,
                        callback=self._sent)
                    for customer_id, raw, partition in encoded
                ]
                await asyncio.gather(*sent)
            except BaseException as exc:
                # Not written: held again (newer states of the same customers
                # win), for the next round to retry.
                self._unwritten = unwritten | self._unwritten
                self._held = held + self._held
                if not isinstance(exc, Exception):
                    raise
                log.exception("writing %d changed states failed", len(encoded))
                return
            if self._stream is not None:
                for message_event in held:
                    await self._stream.ack(message_event)
