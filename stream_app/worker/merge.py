"""A customer's events in event-time order, whatever order Kafka hands the input topics over in.

A customer's events come on four topics, and Kafka orders a partition, not a
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
- it is caught up: everything up to its end offset has come in, as of a
  fetch made no earlier than the one that brought the head (its fetch
  "poll time" in the Kafka client); or
- its client has fetched up to its end offset, nothing came in from it for
  ``wait_s`` and the head has waited as long (what it fetched last was no
  record: transaction markers at its end, say; or the broker stopped
  answering, so no fetch is fresh).

A partition with records still to fetch is always waited for. A rejected
message (no event time) goes on at once when it is at the head of its queue:
it changes no state. Within one partition, messages go on in offset order,
always: that is what lets a state know, by offset, what it has applied.

An event that comes in after a later one of its group went on (its
publisher was late by more than the wait, or published it out of order) is
applied when it comes, and counted (``late``): the rules it feeds judge it at
its own time, and what was judged before it stands.

A partition whose queue grows past ``hold_limit`` is held back from
fetching until it drains to half (``held``), so a topic read ahead of the
others cannot fill the memory.

Nothing here knows Faust: the worker gives it what the Kafka client knows of
each partition (``FetchView``) and takes what ``take`` releases.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

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
        """The next offset the client will fetch."""

    def committed(self, source: Source) -> int | None:
        """The group's committed offset (the next to read) when the partition was assigned."""


@dataclass(slots=True)
class Held:
    """A message waiting for its turn: the message as the stream gave it, and what it decoded to."""

    source: Source
    offset: int
    message: Any  # the stream's event, acknowledged once its state is written
    decoded: Event | Rejection
    polled: int | None  # its partition's poll time when it came in
    came: float  # monotonic seconds when it came in
    late: bool = False  # set when released: a later event of its group had gone on before it

    @property
    def key(self) -> tuple[float, str]:
        if isinstance(self.decoded, Rejection):
            return (float("-inf"), "")
        return (self.decoded.occurred_at.timestamp(), self.decoded.event_id)


@dataclass(slots=True)
class _Queue:
    items: deque[Held] = field(default_factory=deque)
    received_next: int | None = None  # the offset after the last message that came in
    came: float = float("-inf")  # when it came in (monotonic seconds)


class EventTimeMerge:
    def __init__(self, topics: Iterable[str], view: FetchView, wait_s: float = 1.0, hold_limit: int = 2_000,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.topics = tuple(topics)
        self.view = view
        self.wait_s = wait_s
        self.hold_limit = hold_limit
        self._monotonic = monotonic
        self._queues: dict[Source, _Queue] = {}
        self._released: dict[int, tuple[float, str]] = {}  # per partition: the newest key gone on
        self.held: set[Source] = set()  # partitions held back from fetching
        self.waited_on: Source | None = None  # what the last ``take`` waited for, for a log line

    def __len__(self) -> int:
        return sum(len(q.items) for q in self._queues.values())

    def add(self, source: Source, offset: int, message: Any, decoded: Event | Rejection) -> None:
        queue = self._queues.setdefault(source, _Queue())
        queue.came = self._monotonic()
        queue.items.append(Held(source, offset, message, decoded, self.view.polled_at(source), queue.came))
        queue.received_next = offset + 1
        if len(queue.items) > self.hold_limit:
            self.held.add(source)

    def assigned(self, sources: Iterable[Source]) -> None:
        """The partitions this worker reads now; what waits for any other is dropped."""
        keep = set(sources)
        for source in [s for s in self._queues if s not in keep]:
            del self._queues[source]
        for source in keep:
            self._queues.setdefault(source, _Queue())
        self.held &= keep

    def drop(self) -> list[Held]:
        """Everything waiting, dropped (a rebalance: the partitions are read again from their committed offsets)."""
        dropped = [held for queue in self._queues.values() for held in queue.items]
        self._queues = {source: _Queue() for source in self._queues}
        self._released.clear()
        self.held.clear()
        return dropped

    def take(self) -> list[Held]:
        """Every message that may go on now, in the order it must: per group, oldest first."""
        out: list[Held] = []
        self.waited_on = None
        for partition in sorted({source[1] for source in self._queues}):
            out += self._take_group(partition)
        self.held = {s for s in self.held if len(self._queues[s].items) > self.hold_limit // 2}
        return out

    def _take_group(self, partition: int) -> list[Held]:
        group = [(topic, partition) for topic in self.topics if (topic, partition) in self._queues]
        out: list[Held] = []
        while True:
            heads = [self._queues[s].items[0] for s in group if self._queues[s].items]
            if not heads:
                return out
            head = min(heads, key=lambda held: held.key)
            if not isinstance(head.decoded, Rejection):
                for source in group:
                    if not self._queues[source].items and not self._nothing_older(source, head):
                        self.waited_on = source
                        return out
            self._queues[head.source].items.popleft()
            if not isinstance(head.decoded, Rejection):
                newest = self._released.get(partition)
                if newest is not None and head.key < newest:
                    head.late = True
                else:
                    self._released[partition] = head.key
            out.append(head)

    def _nothing_older(self, source: Source, head: Held) -> bool:
        """Whether an empty partition's queue can hold nothing older than ``head``: it is caught up."""
        view = self.view
        highwater = view.highwater(source)
        if highwater is None:
            return False
        queue = self._queues[source]
        received = queue.received_next if queue.received_next is not None else view.committed(source) or 0
        if received >= highwater:
            polled = view.polled_at(source)
            fresh = head.polled is None or (polled is not None and polled >= head.polled)
            if fresh:
                return True
        position = view.position(source)
        now = self._monotonic()
        return (position is not None and position >= highwater
                and now - head.came >= self.wait_s and now - queue.came >= self.wait_s)
