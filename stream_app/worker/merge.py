"""A customer's events in event-time order, whatever order Kafka hands the input topics over in.

A customer's events come on several topics, and Kafka orders a partition, not a
customer: a worker reads each topic at its own speed (a backlog of usage
behind a handful of subscription changes, a topic fetched a little later
than another), so without help the core would fold a customer's events in
an order the replay never sees and judge another history. The input topics
are co-partitioned: partition p of every topic holds the same customers. So
the worker merges, per partition number, the topics' partitions by event
time, as Kafka Streams' task idling and Quix Streams' timestamp alignment
do: each partition's messages wait in a queue of their own, and the oldest
head among them goes to the core once every other partition of the group
has shown it has nothing older:

- its queue holds something later (ties broken by event id, so the order is
  the same whoever reads it); or
- it is read to its end, as of a fetch no older than the one that brought
  the head (the client's poll time of the partition): the client has handed
  over its records up to its end offset and all of them have come in (or,
  what ends it is no record, a transaction marker say: the client's
  position, as it stood when it last handed records over, is at the end,
  and nothing it handed over is still on its way).

The sweep ticks of partition p are one more partition of the group, each
tick at the time it judges the customer up to: a tick a worker sent before
it lost the partition, read by the next owner, waits behind the events
older than it that the next owner has still to read (again), as the replay
judges a customer only once its events up to then are in.

A partition with records to fetch, or handed over and not come in yet, is
always waited for, and so is one not fetched since the head came: a fetch
takes at most the client's fetch wait (``consumer_fetch_wait_ms``) on a broker that
answers, and while the broker does not answer nothing goes on. A rejected message (no event time)
goes on at once when it is at the head of its queue: it changes no state.
Within one partition messages go on in offset order, always: that is what
lets a state know, by offset, what it has applied.

What the client hands over is known here (``fetched``), so a message that
never arrives is noticed: Faust drops a message its stream takes while the
app's flow is stopped, counting on a later seek to fetch it again. When a
message comes in and one handed over before it never did, or one handed
over has not come in for ``stuck_s`` (10 s: a message waits in Faust's
queue a few seconds at most behind those handed over before it) while
nothing else of its partition did, the partition is read again from the
missing one (``add`` and
``stuck`` say where to seek), and whatever comes meanwhile from later
offsets is let go, unprocessed. Nothing past a missing message is ever
processed: a state's record of the offsets it applied would take it for
applied.

An event that comes in after a later one of its group went on (its
publisher sent it after the later one had reached the worker, or out of
order within its topic) is applied when it comes, and counted (``late``):
the rules it feeds judge it at its own time, and what was judged before it
stands.

A partition whose queue grows past ``hold_limit`` is held back from
fetching until it drains to half (``held``), so a topic read ahead of the
others cannot fill the memory.

Nothing here knows Faust: the worker gives it what the Kafka client knows of
each partition (``FetchView``) and what it fetched, and takes what ``take``
releases.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol, runtime_checkable

from churnwatch.schemas.events import Event
from churnwatch.schemas.intake import Rejection

Source = tuple[str, int]  # (topic, partition)


class FetchView(Protocol):
    """What the Kafka client knows of a partition it fetches (None: not known yet)."""

    def highwater(self, source: Source) -> int | None:
        """The partition's end offset, as of the last fetch."""

    def polled_at(self, source: Source) -> int | None:
        """When that last fetch answered (milliseconds, the client's clock)."""

    def position(self, source: Source) -> int | None:
        """The next offset the client will hand over."""

    def committed(self, source: Source) -> int | None:
        """The group's committed offset (the next to read), where reading starts after an assignment."""


@runtime_checkable
class Timed(Protocol):
    """A message that is no event but has its place among them (a sweep tick)."""

    def merge_key(self) -> tuple[float, str]:
        """Its time (epoch seconds), then what breaks a tie with an event of that time."""


Decoded = Event | Rejection | Timed


def order_key(decoded: Decoded) -> tuple[float, str] | None:
    """Where a message goes in its group: event time, ties broken by event id (the same order whoever
    reads it); None for a rejection, which changes no state and goes at once."""
    if isinstance(decoded, Rejection):
        return None
    if isinstance(decoded, Timed):
        return decoded.merge_key()
    return (decoded.occurred_at.timestamp(), decoded.event_id)


class Arrival(Enum):
    """What became of a message that came in."""

    QUEUED = "queued"
    REPEAT = "repeat"  # an offset that came in already, or one after a gap being read again: let go
    GAP = "gap"  # a message fetched before it never came in: let go, and read the partition again from there


@dataclass(slots=True)
class Held:
    """A message waiting for its turn: the message as the stream gave it, and what it decoded to."""

    source: Source
    offset: int
    message: Any  # the stream's event, acknowledged once its state is written
    decoded: Decoded
    polled: int | None  # its partition's poll time when it came in
    came: float  # monotonic seconds when it came in
    key: tuple[float, str] | None  # its place (``order_key``); None: at once
    late: bool = False  # set when released: a later event of its group had gone on before it


@dataclass(slots=True)
class _Queue:
    items: deque[Held] = field(default_factory=deque)
    received_next: int | None = None  # the offset after the last message that came in
    fetched: deque[int] = field(default_factory=deque)  # offsets the client handed over, not come in yet
    fetched_next: int | None = None  # the offset after the last one the client handed over
    position: int | None = None  # the client's position when it last handed records over (what passed it)
    handed: float = 0.0  # when the oldest of ``fetched`` was handed over (monotonic seconds)
    came: float = 0.0  # when the last message came in
    asked: float = 0.0  # when the partition was last asked to be read again
    again_from: int | None = None  # read again from this offset after a gap: later ones are let go till it comes


class EventTimeMerge:
    def __init__(self, topics: Iterable[str], view: FetchView, hold_limit: int = 2_000, stuck_s: float = 10.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.topics = tuple(topics)
        self.view = view
        self.stuck_s = stuck_s
        self.hold_limit = hold_limit
        self._monotonic = monotonic
        self._queues: dict[Source, _Queue] = {}
        self._released: dict[int, tuple[float, str]] = {}  # per partition: the newest key gone on
        self._waiting = 0  # messages in all queues
        self.held: set[Source] = set()  # partitions held back from fetching
        self.waited_on: Source | None = None  # what the last ``take`` waited for, for a log line

    def __len__(self) -> int:
        return self._waiting

    def fetched(self, source: Source, offsets: Iterable[int]) -> None:
        """The client handed these offsets of ``source`` over (they are on their way here)."""
        queue = self._queues.get(source)
        if queue is None:
            return
        if not queue.fetched:
            queue.handed = self._monotonic()
        queue.fetched.extend(offsets)
        if queue.fetched:
            queue.fetched_next = max(queue.fetched_next or 0, queue.fetched[-1] + 1)

    def returned(self) -> None:
        """The client has just handed records over (or none): its positions now are what passed through it.

        Read here, not when judging: the client moves its position as it
        hands records over, before they reach the worker, so a position read
        later may count records still on their way.
        """
        for source, queue in self._queues.items():
            queue.position = self.view.position(source)

    def add(self, source: Source, offset: int, message: Any, decoded: Decoded) -> tuple[Arrival, int]:
        """A message came in: queued, let go as a repeat, or a gap found (the offset to read again from)."""
        queue = self._queues.setdefault(source, _Queue())
        queue.came = self._monotonic()
        fetched = queue.fetched
        missed = None
        while fetched and fetched[0] < offset:
            missed = fetched.popleft() if missed is None else min(missed, fetched.popleft())
        if fetched and fetched[0] == offset:
            fetched.popleft()
        if queue.again_from is not None:
            if offset != queue.again_from:
                return Arrival.REPEAT, offset
            queue.again_from = None
        elif queue.received_next is not None and offset < queue.received_next:
            return Arrival.REPEAT, offset
        if missed is not None and (queue.received_next is None or missed >= queue.received_next):
            self._read_again(queue, missed)
            return Arrival.GAP, missed
        queue.items.append(Held(source, offset, message, decoded, self.view.polled_at(source), self._monotonic(),
                                order_key(decoded)))
        self._waiting += 1
        queue.received_next = offset + 1
        if len(queue.items) > self.hold_limit:
            self.held.add(source)
        return Arrival.QUEUED, offset

    def stuck(self) -> list[tuple[Source, int]]:
        """Partitions to read again (where to seek): one whose oldest handed-over message has not come in for
        ``stuck_s`` while nothing else of it did, and one asked to be read again whose missing message has not
        come in ``stuck_s`` after the asking (asked again)."""
        now = self._monotonic()
        found = []
        for source, queue in self._queues.items():
            quiet = now - queue.came >= self.stuck_s
            if queue.again_from is not None:
                if quiet and now - queue.asked >= self.stuck_s:
                    found.append((source, queue.again_from))
                    self._read_again(queue, queue.again_from)
            elif queue.fetched and quiet and now - queue.handed >= self.stuck_s:
                found.append((source, queue.fetched[0]))
                self._read_again(queue, queue.fetched[0])
        return found

    def _read_again(self, queue: _Queue, offset: int) -> None:
        queue.again_from = offset
        queue.asked = self._monotonic()
        queue.fetched.clear()
        queue.fetched_next = queue.position = offset

    def assigned(self, sources: Iterable[Source]) -> None:
        """The partitions this worker reads now; what waits for any other is dropped."""
        keep = set(sources)
        for source in [s for s in self._queues if s not in keep]:
            self._waiting -= len(self._queues.pop(source).items)
        for source in keep:
            self._queues.setdefault(source, _Queue())
        self.held &= keep

    def drop(self) -> list[Held]:
        """Everything waiting, dropped (a rebalance: the partitions are read again from their committed offsets)."""
        dropped = [held for queue in self._queues.values() for held in queue.items]
        self._queues = {source: _Queue() for source in self._queues}
        self._waiting = 0
        self._released.clear()
        self.held.clear()
        return dropped

    def take(self, partition: int | None = None) -> list[Held]:
        """Every message that may go on now, in the order it must: per group, oldest first (only ``partition``'s
        group: a message of it just came in, and nothing else changed)."""
        out: list[Held] = []
        self.waited_on = None
        groups = sorted({source[1] for source in self._queues}) if partition is None else [partition]
        for group in groups:
            out += self._take_group(group)
        if self.held:
            self.held = {s for s in self.held if len(self._queues[s].items) > self.hold_limit // 2}
        return out

    def _take_group(self, partition: int) -> list[Held]:
        group = [(topic, partition) for topic in self.topics if (topic, partition) in self._queues]
        out: list[Held] = []
        while True:
            heads = [self._queues[s].items[0] for s in group if self._queues[s].items]
            if not heads:
                return out
            head = min(heads, key=_place)
            key = head.key
            if key is not None:
                for source in group:
                    if not self._queues[source].items and not self._nothing_older(source, head):
                        self.waited_on = source
                        return out
            self._queues[head.source].items.popleft()
            self._waiting -= 1
            if key is not None:
                newest = self._released.get(partition)
                if newest is not None and key[0] < newest[0]:  # same time, same topic: in offset order
                    head.late = True
                else:
                    self._released[partition] = max(key, newest or key)
            out.append(head)

    def _nothing_older(self, source: Source, head: Held) -> bool:
        """Whether an empty partition's queue can hold nothing older than ``head``: it is read to its end."""
        view = self.view
        queue = self._queues[source]
        highwater = view.highwater(source)
        if highwater is None or queue.fetched or queue.again_from is not None:
            return False  # not fetched yet, or handed over and still on the way here
        polled = view.polled_at(source)
        if head.polled is not None and (polled is None or polled < head.polled):
            return False  # not fetched since the head was: something older may have come since
        start = queue.fetched_next if queue.fetched_next is not None else view.committed(source) or 0
        return start >= highwater or (queue.position is not None and queue.position >= highwater)


def _place(held: Held) -> tuple[float, str]:
    return (float("-inf"), "") if held.key is None else held.key
