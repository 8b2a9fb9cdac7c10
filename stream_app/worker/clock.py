"""The worker's clock: wall time in production, the event-time watermark elsewhere.

With the event clock, the streams' own timestamps age customers, so a
replayed, simulated or compressed stream behaves as its data says, whatever
the wall clock does. An event is always evaluated at its own time
(``for_event``); the clock's ``now`` is what the sweep uses, to age the
customers who sent nothing.

A worker reads many partitions at different speeds. If "now" were the newest
event seen anywhere, a partition read ahead would make customers on a lagging
one look silent while their events still wait. So the watermark is the
oldest newest-event-time among the partitions that may still have records
waiting: those whose next offset to read (from what was processed, or else
the group's committed offset) is behind the high watermark the consumer last
saw, and those that delivered a record in the last ``idle_s`` seconds (the
consumer's high watermark is only as fresh as its last fetch, so a partition
being written to looks caught up between fetches). One caught up and quiet
holds nothing back.

The watermark never moves backwards; instead there is no sweep (``now`` is
None) while an assigned partition with records waiting has none read yet, or
is behind the time already swept to. That is a worker taking over a dead
one's partitions: their customers' states come from the changelog, due in
the index, while their events since the last commit are still unread. Swept
at the survivor's time, they would look silent and alert falsely.

A partition taken over with nothing left to read has shown this worker no
event at all; its time is the newest event its customers' recovered states
had applied (``recovered``). Without it a worker given only such
partitions (one that joins after another has read the whole backlog) never
swept, never announced its partitions' clocks, and so held back every
worker's model.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple, Protocol

Source = Hashable  # a (topic, partition); the maps of them are Mapping[Any, ...]: a Mapping's key is invariant


class Progress(NamedTuple):
    """What the consumer knows of a partition (None: not known yet)."""

    highwater: int | None
    committed: int | None  # the group's next offset to read


class Clock(Protocol):
    # Why the last ``now`` was None, for the log: what held the sweep back, and which partition.
    waiting_on: str | None
    held_by: Source | None

    def for_event(self, event_time: datetime) -> datetime:
        """The time an event is evaluated at."""

    def observe(self, source: Source, offset: int, event_time: datetime | None) -> None:
        """A record was read from ``source``; ``event_time`` if it was an accepted event."""

    def now(self, progress: Mapping[Any, Progress]) -> datetime | None:
        """The sweep's time, given what the consumer knows of each source."""

    def recovered(self, sources: Iterable[Source], newest: datetime) -> None:
        """States of ``sources`` taken over from another worker had applied events up to ``newest``."""


class WallClock:
    waiting_on: str | None = None  # the wall clock never holds the sweep back
    held_by: Source | None = None

    def for_event(self, event_time: datetime) -> datetime:
        return datetime.now(UTC)

    def observe(self, source: Source, offset: int, event_time: datetime | None) -> None:
        pass

    def now(self, progress: Mapping[Any, Progress]) -> datetime:
        return datetime.now(UTC)

    def recovered(self, sources: Iterable[Source], newest: datetime) -> None:
        pass


class EventClock:
    def __init__(self, idle_s: float = 2.0, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.idle_s = idle_s
        self._monotonic = monotonic
        self._newest: dict[Source, datetime] = {}
        self._read: dict[Source, int] = {}
        self._heard: dict[Source, float] = {}
        self._recovered: dict[Source, datetime] = {}
        self._watermark: datetime | None = None
        self.waiting_on: str | None = None
        self.held_by: Source | None = None

    def for_event(self, event_time: datetime) -> datetime:
        return event_time

    def observe(self, source: Source, offset: int, event_time: datetime | None) -> None:
        self._read[source] = max(self._read.get(source, -1), offset)
        self._heard[source] = self._monotonic()
        if event_time is not None:
            newest = self._newest.get(source)
            self._newest[source] = event_time if newest is None else max(newest, event_time)

    def recovered(self, sources: Iterable[Source], newest: datetime) -> None:
        for source in sources:
            known = self._recovered.get(source)
            self._recovered[source] = newest if known is None else max(known, newest)

    def now(self, progress: Mapping[Any, Progress]) -> datetime | None:
        holding: list[tuple[datetime, Source, int, int | None]] = []  # (newest read, where, next offset, highwater)
        wall = self._monotonic()
        for source, (highwater, committed) in progress.items():
            next_offset = max(self._read.get(source, -1) + 1, committed or 0)
            caught_up = highwater is not None and next_offset >= highwater
            quiet = wall - self._heard.get(source, float("-inf")) >= self.idle_s
            if caught_up and quiet:
                continue  # nothing waiting here
            newest = self._newest.get(source)
            if newest is None:  # records waiting, none read yet: wait for them
                self._hold(source, next_offset, highwater, "nothing read yet")
                return None
            holding.append((newest, source, next_offset, highwater))
        candidate: datetime | None
        if holding:
            candidate, source, next_offset, highwater = min(holding, key=lambda held: held[0])
            if self._watermark is not None and candidate < self._watermark:
                # a partition behind the time already swept to: wait until it catches up
                self._hold(source, next_offset, highwater,
                           f"read up to {candidate.isoformat()}, behind the sweep's time")
                return None
        else:  # nothing waiting: the newest time this worker's partitions have shown, or their states had
            candidate = max((known[s] for known in (self._newest, self._recovered) for s in progress if s in known),
                            default=None)
        self.waiting_on = self.held_by = None
        if candidate is not None and (self._watermark is None or candidate > self._watermark):
            self._watermark = candidate
        return self._watermark

    def _hold(self, source: Source, next_offset: int, highwater: int | None, why: str) -> None:
        """No sweep now; said in words only here, not for every partition at every sweep."""
        self.waiting_on = f"{source}: next offset {next_offset}, high watermark {highwater}, {why}"
        self.held_by = source


def make_clock(kind: Literal["wall", "event"], idle_s: float = 2.0) -> Clock:
    return WallClock() if kind == "wall" else EventClock(idle_s)
