"""The sweep's index of due times: which customers to look at, and when.

The core tells, for each customer, the next time their rules could change
with no new event (``next_due_at``). This index keeps those times in a heap,
so a sweep costs O(k log n) for the k customers due, not a scan of the table.
Superseded entries are skipped lazily and the heap is compacted when they
outnumber the live ones.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Due:
    customer_id: str
    due_at: int
    partition: int


class DueIndex:
    def __init__(self) -> None:
        self._heap: list[tuple[int, str]] = []
        self._live: dict[str, tuple[int, int]] = {}  # customer -> (due, partition)

    def __len__(self) -> int:
        return len(self._live)

    def set(self, customer_id: str, due_at: int | None, partition: int) -> None:
        """Record the customer's next due time (None: nothing due)."""
        current = self._live.get(customer_id)
        if due_at is None:
            self._live.pop(customer_id, None)
            return
        self._live[customer_id] = (due_at, partition)
        if current is None or current[0] != due_at:
            heapq.heappush(self._heap, (due_at, customer_id))
            if len(self._heap) > 2 * len(self._live) + 1024:
                self._compact()

    def pop_due(self, now: int, limit: int) -> list[Due]:
        """Remove and return up to ``limit`` customers due at or before ``now``, earliest first."""
        out: list[Due] = []
        while self._heap and self._heap[0][0] <= now and len(out) < limit:
            due_at, customer_id = heapq.heappop(self._heap)
            live = self._live.get(customer_id)
            if live is None or live[0] != due_at:
                continue  # superseded by a later set()
            del self._live[customer_id]
            out.append(Due(customer_id, due_at, live[1]))
        return out

    def next_due_at(self) -> int | None:
        while self._heap:
            due_at, customer_id = self._heap[0]
            live = self._live.get(customer_id)
            if live is not None and live[0] == due_at:
                return due_at
            heapq.heappop(self._heap)
        return None

    def _compact(self) -> None:
        self._heap = [(due, cid) for cid, (due, _) in self._live.items()]
        heapq.heapify(self._heap)
