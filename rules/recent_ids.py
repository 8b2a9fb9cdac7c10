"""The event ids a customer's state remembers, so a redelivered event changes nothing.

A busy customer's state holds the newest 128 ids, and the core is pure: each
event makes a new state. Kept as a dict, those ids cost a copy per event of
128 keys and 128 values, each a Python object whose reference count the copy
and the old state's release both touch; over a customer base that misses
the CPU's caches, and on a warehouse export (30 events per customer and day)
it was a third of the core's time. Here the ids live in one string and their
times in one array: a new state copies two flat buffers.

The ids are kept oldest first by (time, id), so the oldest is the first and
the set kept (the newest ``limit``) depends on the events seen, not on their
order. Outside the core they read and write as ``{event_id: time}``.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Mapping
from itertools import accumulate
from operator import sub

# Each id is stored between separators; the two characters that could be
# taken for one are escaped, so no id can match across another's boundary.
_SEP = "\x00"
_ESCAPES = str.maketrans({"\x00": "\x01\x02", "\x01": "\x01\x03"})


def _escaped(event_id: str) -> str:
    return event_id.translate(_ESCAPES) if ("\x00" in event_id or "\x01" in event_id) else event_id


def _unescaped(stored: str) -> str:
    return stored.replace("\x01\x02", "\x00").replace("\x01\x03", "\x01") if "\x01" in stored else stored


class RecentIds:
    """Immutable: every change returns a new value."""

    __slots__ = ("_text", "_times")

    def __init__(self, text: str = _SEP, times: array[int] | None = None) -> None:
        self._text = text  # "\0id1\0id2\0", ids escaped, oldest first
        self._times = times if times is not None else array("q")

    @classmethod
    def of(cls, ids: Mapping[str, int]) -> RecentIds:
        """From ``{event_id: time}`` in any order."""
        ordered = sorted(((int(at), event_id) for event_id, at in ids.items()))
        return cls._built(ordered)

    @classmethod
    def _built(cls, ordered: list[tuple[int, str]]) -> RecentIds:
        text = _SEP + "".join(_escaped(event_id) + _SEP for _, event_id in ordered)
        return cls(text, array("q", (at for at, _ in ordered)))

    def __contains__(self, event_id: object) -> bool:
        return isinstance(event_id, str) and f"{_SEP}{_escaped(event_id)}{_SEP}" in self._text

    def __len__(self) -> int:
        return len(self._times)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RecentIds):
            return self._text == other._text and self._times == other._times
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._text)

    def __repr__(self) -> str:
        return f"RecentIds({self.as_dict()!r})"

    def items(self) -> Iterator[tuple[str, int]]:
        """(event id, time), oldest first."""
        stored = self._text[1:-1].split(_SEP) if len(self._text) > 1 else []
        return zip(map(_unescaped, stored), self._times, strict=True)

    def as_dict(self) -> dict[str, int]:
        return dict(self.items())

    @property
    def oldest_time(self) -> int | None:
        return self._times[0] if self._times else None

    def with_id(self, event_id: str, at: int, limit: int) -> RecentIds:
        """One more id; the oldest go beyond ``limit``. Most events come in time order: an append."""
        text, times = self._text, self._times
        if times and (at < times[-1] or (at == times[-1] and event_id < self._newest_id())):
            return RecentIds._built(sorted([*((t, e) for e, t in self.items()), (at, event_id)])[-limit:])
        text = text + _escaped(event_id) + _SEP
        times = array("q", times)
        times.append(at)
        if len(times) > limit:
            drop = len(times) - limit
            cut = 0
            for _ in range(drop):
                cut = text.index(_SEP, cut + 1)
            text = text[cut:]
            del times[:drop]
        return RecentIds(text, times)

    def packed(self, prefix: str) -> tuple[bool, str, list[int]]:
        """The stored form (``rules.state_encoding``): whether ``prefix`` was taken off every id, the ids'
        text, and their times as differences (ids are mostly the customer's id and a suffix, close in time)."""
        text, times = self._text, self._times
        stripped = bool(prefix) and _escaped(prefix) == prefix and text.count(_SEP + prefix) == len(times) > 0
        if stripped:
            text = text.replace(_SEP + prefix, _SEP)
        return stripped, text, [times[0], *map(sub, times[1:], times[:-1])] if times else []

    @classmethod
    def unpacked(cls, prefix: str, stripped: bool, text: str, differences: list[int]) -> RecentIds:
        """The inverse of ``packed``; a text and times that cannot be one are a ValueError."""
        if stripped:
            text = text.replace(_SEP, _SEP + prefix)[:-len(prefix)]
        if not (isinstance(text, str) and text.startswith(_SEP) and text.endswith(_SEP)
                and text.count(_SEP) - 1 == len(differences)):
            raise ValueError("remembered event ids and their times do not match")
        return cls(text, array("q", accumulate(differences)))

    def since(self, cutoff: int) -> RecentIds:
        """Only the ids at or after ``cutoff``."""
        if not self._times or self._times[0] >= cutoff:
            return self
        return RecentIds._built([(t, e) for e, t in self.items() if t >= cutoff])

    def _newest_id(self) -> str:
        return _unescaped(self._text[self._text.rindex(_SEP, 0, len(self._text) - 1) + 1:-1])
