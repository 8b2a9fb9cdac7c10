"""The worker's clock: wall time in production, the event-time watermark elsewhere.

With the event clock, the streams' own timestamps age customers, so a
replayed, simulated or compressed stream behaves as its data says, whatever
the wall clock does. An event is always evaluated at its own time
(``for_event``); the clock's ``now`` is what the sweep uses, to age the
customers who sent nothing.

A worker reads many partitions at different speeds. If "now" were the newest
event seen anywhere, a partition read ahead would make customers on a lagging
one look silent while their events still wait. So the watermark is the
oldest newest-event-time among the partitions that still have records
waiting (the next offset to read, from what was processed or else from the
group's committed offset, behind the partition's high watermark); a partition
that is caught up holds nothing back; one with records waiting and none read
yet holds the clock where it is. The watermark never moves backwards.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from datetime import UTC, datetime
from typing import Literal, NamedTuple, Protocol

Source = Hashable  # a (topic, partition)


class Progress(NamedTuple):
    """What the consumer knows of a partition (None: not known yet)."""

    highwater: int | None
    committed: int | None  # the group's next offset to read


class Clock(Protocol):
    def for_event(self, event_time: datetime) -> datetime:
        """The time an event is evaluated at."""

    def observe(self, source: Source, offset: int, event_time: datetime | None) -> None:
        """A record was read from ``source``; ``event_time`` if it was an accepted event."""

    def now(self, progress: Mapping[Source, Progress]) -> datetime | None:
        """The sweep's time, given what the consumer knows of each source."""


class WallClock:
    def for_event(self, event_time: datetime) -> datetime:
        return datetime.now(UTC)

    def observe(self, source: Source, offset: int, event_time: datetime | None) -> None:
        pass

    def now(self, progress: Mapping[Source, Progress]) -> datetime:
        return datetime.now(UTC)


class EventClock:
    def __init__(self) -> None:
        self._newest: dict[Source, datetime] = {}
        self._read: dict[Source, int] = {}
        self._watermark: datetime | None = None

    def for_event(self, event_time: datetime) -> datetime:
        return event_time

    def observe(self, source: Source, offset: int, event_time: datetime | None) -> None:
        self._read[source] = max(self._read.get(source, -1), offset)
        if event_time is not None:
            newest = self._newest.get(source)
            self._newest[source] = event_time if newest is None else max(newest, event_time)

    def now(self, progress: Mapping[Source, Progress]) -> datetime | None:
        holding: list[datetime] = []
        for source, (highwater, committed) in progress.items():
            next_offset = max(self._read.get(source, -1) + 1, committed or 0)
            if highwater is not None and next_offset >= highwater:
                continue  # caught up: nothing waiting here
            newest = self._newest.get(source)
            if newest is None:
                return self._watermark  # records waiting, none read yet: wait for them
            holding.append(newest)
        candidate = min(holding) if holding else max(self._newest.values(), default=None)
        if candidate is not None and (self._watermark is None or candidate > self._watermark):
            self._watermark = candidate
        return self._watermark


def make_clock(kind: Literal["wall", "event"]) -> Clock:
    return WallClock() if kind == "wall" else EventClock()
