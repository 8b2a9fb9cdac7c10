"""Batched changelog writes, and the acknowledgements that wait for them: the outbox order.

Each message is processed as it comes (its alerts are sent at once), but
changed states are written to the table, one changelog message per customer,
only every ``batch_max`` messages or ``batch_wait_s`` seconds, and the
messages are acknowledged only once the broker has confirmed that write. A
customer busy within the window costs one changelog message, not one per
event; a crash before the write leaves those offsets uncommitted, so the
messages are read again, and the offsets each state records make the
repeat harmless (``CustomerState.applied``).

What the processed messages sent (alerts, dead letters, labels) is in the
outbox, and the broker confirms all of it before the states are written: a
state that records an event (so that reading the event again changes
nothing) is never in the changelog while an alert it made could still be
lost. So: alerts confirmed, then states confirmed, then offsets committed; a
crash anywhere between repeats work, and a repeat sends the same messages.

A state enters the table's local store only once the broker has it. With
the on-disk store this matters: a state on disk that the changelog never got
would make the repeated messages look like duplicates, so their effect would
be on this disk only, and lost for the worker that next takes the partition.

At a rebalance Faust's recovery reads the changelog of every partition the
worker keeps into the table again (the memory store from its start), while
this writer still confirms states processed before it. A recovered message
older than a state confirmed meanwhile would overwrite it, and the customer's
next event would be folded onto the older state: one event lost. So states
confirmed from the start of a rebalance to the end of its recovery are put
back once recovery is done (``recovered``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol

from churnwatch.rules import CustomerState
from churnwatch.worker.faust_private import store, stored_value
from churnwatch.worker.state_cache import DecodedStates
from churnwatch.worker.versions import WriteVersions, framed, version_of

log = logging.getLogger(__name__)


class Acknowledger(Protocol):
    """The agent's stream: acknowledging a message lets Faust commit its offset."""

    async def ack(self, event: Any) -> bool: ...


class Outbox:
    """Messages sent on behalf of the messages being processed, until the broker confirms each."""

    RETRIES = 3  # resends of a message the producer gave up on, before a write round gives up (and retries)

    def __init__(self) -> None:
        self._sent: list[tuple[Any, dict[str, Any], Any]] = []  # (topic, its message, the delivery future)

    def __len__(self) -> int:
        return len(self._sent)

    async def send(self, topic: Any, **message: Any) -> None:
        """Send now (``topic.send`` queues it for the producer); the delivery is confirmed before the next write."""
        self._sent.append((topic, message, await topic.send(**message)))

    def take(self) -> list[tuple[Any, dict[str, Any], Any]]:
        sent, self._sent = self._sent, []
        return sent

    def put_back(self, sent: list[tuple[Any, dict[str, Any], Any]]) -> None:
        self._sent = sent + self._sent

    async def confirm(self, sent: list[tuple[Any, dict[str, Any], Any]]) -> None:
        """Wait until the broker has every one; one it refused is sent again (``sent`` keeps the newest try)."""
        for n, (topic, message, future) in enumerate(sent):
            for attempt in range(self.RETRIES + 1):
                try:
                    await future
                    break
                except Exception:
                    if attempt == self.RETRIES:
                        raise
                    log.warning("sending to %s failed; sending again", topic.get_topic_name(), exc_info=True)
                    future = await topic.send(**message)
                    sent[n] = (topic, message, future)


class ChangelogWriter:
    """The customer states of one worker: read through pending changes, written in batches."""

    def __init__(self, table: Any, batch_max: int, batch_wait_s: float, decoded: DecodedStates,
                 sent: Any = None, versions: WriteVersions | None = None) -> None:
        """``table``: the Faust table (``data``, ``get``, ``changelog_topic`` and its serializers);
        ``sent``: the table's callback for a confirmed changelog message; ``versions``: what each write's
        values are framed with (``churnwatch.worker.versions``)."""
        self.table = table
        self.versions = versions or WriteVersions(lambda: 0)
        self.batch_max = batch_max
        self.batch_wait_s = batch_wait_s
        self.decoded = decoded
        self._sent = sent
        # States changed since the last write: customer -> (state, partition).
        self._unwritten: dict[str, tuple[CustomerState, int]] = {}
        # States of the write under way, read from here until the broker confirms them.
        self._in_flight: dict[str, tuple[CustomerState, int]] = {}
        # Processed messages not yet acknowledged: their states are in _unwritten.
        self._held: list[Any] = []
        self.outbox = Outbox()
        # Messages that speak for the states processed before them: sent once those are confirmed.
        self._after: list[tuple[Any, dict[str, Any]]] = []
        self._soon = asyncio.Event()  # set: write now, not at the end of the window
        self._stream: Acknowledger | None = None
        # Told each message (the stream's event) acknowledged: what the input offsets are committed up to.
        self.on_acknowledged: Callable[[Any], None] = lambda message_event: None
        self._timer: asyncio.Task[None] | None = None
        self._writing = asyncio.Lock()
        # States the broker confirmed since a rebalance began: customer -> (bytes, partition).
        self._recovering = False
        self._confirmed_in_rebalance: dict[str, tuple[bytes, int]] = {}
        # Customers the on-disk store gained, by partition (it cannot count its keys
        # cheaply; its owner resets this at recovery and counts what the store holds).
        self.stored = Counter[int]()

    def get(self, customer_id: str, partition: int | None = None) -> CustomerState | None:
        """The customer's newest state; ``partition``: the customer's (None: looked for in every one)."""
        unwritten = self._unwritten.get(customer_id) or self._in_flight.get(customer_id)
        if unwritten is not None:
            return unwritten[0]
        raw = stored_value(self.table, customer_id, partition)
        return self.decoded.decode(customer_id, raw) if raw is not None else None

    def put(self, customer_id: str, state: CustomerState, partition: int) -> None:
        self._unwritten[customer_id] = (state, partition)

    def pending(self, customer_id: str) -> bool:
        """Whether the customer has a change not yet in the table (the table's copy is older)."""
        return customer_id in self._unwritten or customer_id in self._in_flight

    def after_write(self, topic: Any, **message: Any) -> None:
        """Send ``message`` once every state changed before it is confirmed by the broker.

        Why: a partition's clock on the labels topic says that everything of
        its customers before a time is done, and lets every worker's model
        move on to a newer version. Sent before the states that did that work
        were in the changelog, a crash between the two had those messages
        processed again after the model had moved on: a snapshot scored a
        second time with a newer version than the replay's (seen in ``make
        chaos``: its label carried the other score, and the calibration
        learned from it differed).

        The write comes at once rather than a whole window later, and in
        the writer's own task: written inline, the agent waited for the
        broker to confirm a batch of states at each partition's clock, and
        an alert's latency with it (a failed payment's alert p99 rose from
        about 150 ms to 500-800 ms at a steady load, ``make bench`` (e)).
        """
        self._after.append((topic, message))
        self._soon.set()

    def hold(self, stream: Acknowledger, message_event: Any) -> bool:
        """Keep a processed message unacknowledged until its state is written; True when a batch is full and
        the caller should write before it processes more (the writer's task writes the rest)."""
        self._held.append(message_event)
        if self._timer is None:  # the first message: the agent's stream is known from now on
            self._stream = stream
            self._timer = asyncio.get_running_loop().create_task(self._keep_writing())
        return len(self._held) >= self.batch_max

    async def _keep_writing(self) -> None:
        """Write every ``batch_wait_s``, or at once when a message waits for a write (``after_write``).

        A plain task, not a Faust timer: at a rebalance or shutdown Faust
        waits for every message to be acknowledged, and its own services are
        stopping then; this keeps writing (and acknowledging) through it.
        """
        while True:
            try:
                await asyncio.wait_for(self._soon.wait(), self.batch_wait_s)
            except TimeoutError:
                pass
            self._soon.clear()
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
            outbox = self.outbox.take()
            after, self._after = self._after, []
            self._in_flight = unwritten
            table = self.table
            try:
                await self.outbox.confirm(outbox)  # what the messages sent, before the states that record them
                sent = []
                version = self.versions.next()
                for customer_id, (state, partition) in unwritten.items():
                    raw = framed(version, state.to_bytes())
                    self.decoded.remember(customer_id, raw, state)
                    sent.append(await table.changelog_topic.send(
                        key=customer_id, value=raw, partition=partition,
                        key_serializer=table.key_serializer, value_serializer=table.value_serializer,
                        callback=self._confirmed(customer_id, raw, partition)))
                await asyncio.gather(*sent)
            except BaseException as exc:
                # Not (all) written: held again (newer states of the same customers
                # win), for the next round to retry.
                self._unwritten = unwritten | self._unwritten
                self._held = held + self._held
                self.outbox.put_back(outbox)
                self._after = after + self._after
                if not isinstance(exc, Exception):
                    raise
                log.exception("confirming %d messages sent and writing %d changed states failed", len(outbox),
                              len(unwritten))
                return
            finally:
                self._in_flight = {}
            if self._stream is not None:
                for message_event in held:
                    await self._stream.ack(message_event)
                    self.on_acknowledged(message_event)
            for n, (topic, message) in enumerate(after):  # confirmed with the next write's outbox
                try:
                    await self.outbox.send(topic, **message)
                except Exception:  # noqa: BLE001 - sent at the next write instead
                    log.exception("sending to %s after a write failed; sending at the next", topic.get_topic_name())
                    self._after = after[n:] + self._after
                    break

    def rebalancing(self) -> None:
        """A rebalance began: from now until ``recovered``, confirmed states are kept to be put back."""
        self._recovering = True

    def recovered(self, active: set[int]) -> list[tuple[str, bytes, int]]:
        """Put back every state confirmed since the rebalance began, in the partitions still the worker's.

        Each is the newest state of its customer unless recovery read a
        newer version (another worker's, written since). Returns what was
        put back (customer, bytes, partition), so what is built from states
        (the due index) follows it.
        """
        kept = [(customer_id, raw, partition)
                for customer_id, (raw, partition) in self._confirmed_in_rebalance.items()
                if partition in active
                and version_of(raw) >= version_of(stored_value(self.table, customer_id, partition))]
        self._recovering = False
        self._confirmed_in_rebalance = {}
        overwritten = 0
        for customer_id, raw, partition in kept:
            overwritten += stored_value(self.table, customer_id, partition) != raw
            if store(self.table, customer_id, raw, partition):
                self.stored[partition] += 1
        if overwritten:
            log.info("%d states confirmed during the rebalance put back over older ones recovery read", overwritten)
        return kept

    def _confirmed(self, customer_id: str, raw: bytes, partition: int) -> Any:
        """The callback for one confirmed changelog message: into the local store, then the table's own.

        In this order, so a crash between the two leaves the store's recorded
        changelog offset behind its contents (the message is read again at
        start), never ahead of them.
        """
        def confirmed(sent_message: Any) -> None:
            if self._recovering:
                self._confirmed_in_rebalance[customer_id] = (raw, partition)
            if store(self.table, customer_id, raw, partition):
                self.stored[partition] += 1
            if self._sent is not None:
                self._sent(sent_message)
        return confirmed
