"""Which of two changelog values of one customer is newer, when different workers wrote them.

A partition of the state table has one writer at a time, but not for all
time: a worker that lost its partitions in a rebalance (or stopped answering
for a while and was counted out) may still have writes on their way, which
can land after the new owner's. Faust's recovery applies changelog records
in their order, so such a late record would put an older state over a newer
one. So each value the worker writes is framed with a version: the consumer
group's generation it was written in, then a number that grows with every
write round of the process. A new owner is always of a later generation than
the writer it took over from; within a generation a partition has one
writer, whose rounds are in order. Recovery keeps, per customer, the value
with the highest version (``churnwatch.worker.faust_private.keep_newest``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from churnwatch.rules.state_encoding import FRAME, FRAME_BYTES

Version = tuple[int, int]  # (generation, write round)
UNVERSIONED: Version = (-1, -1)  # written before versions, or nothing: older than any versioned value


def framed(version: Version, raw: bytes) -> bytes:
    generation, written = version
    return FRAME + max(generation, 0).to_bytes(8, "big") + written.to_bytes(8, "big") + raw


def version_of(raw: bytes | None) -> Version:
    if raw is None or raw[:1] != FRAME or len(raw) < FRAME_BYTES:
        return UNVERSIONED
    return int.from_bytes(raw[1:9], "big"), int.from_bytes(raw[9:17], "big")


class WriteVersions:
    """The versions one worker process writes with: its group generation, then a rising number.

    The number is wall-clock microseconds, kept rising: should a broker not
    move the generation on, a later process still writes later versions.
    """

    def __init__(self, generation: Callable[[], int]) -> None:
        self.generation = generation
        self._last = 0

    def next(self) -> Version:
        self._last = max(self._last + 1, time.time_ns() // 1000)
        return self.generation(), self._last
