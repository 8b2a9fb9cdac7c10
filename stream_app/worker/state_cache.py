"""Decoded customer states, so a busy customer's table value is not parsed for every batch.

An entry is only used while the table still holds the bytes it was decoded
from (the same object in memory, equal bytes read from disk), so a stale
entry can never be returned.
"""

from __future__ import annotations

from collections import OrderedDict

from churnwatch.rules import CustomerState


class DecodedStates:
    """A least-recently-used map of customer -> (table value, decoded state)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[str, tuple[bytes, CustomerState]] = OrderedDict()

    def decode(self, customer_id: str, raw: bytes) -> CustomerState:
        entry = self._entries.get(customer_id)
        if entry is not None and (entry[0] is raw or entry[0] == raw):
            self._entries.move_to_end(customer_id)
            return entry[1]
        state = CustomerState.from_bytes(raw)
        self.remember(customer_id, raw, state)
        return state

    def remember(self, customer_id: str, raw: bytes, state: CustomerState) -> None:
        if self.capacity <= 0:
            return
        self._entries[customer_id] = (raw, state)
        self._entries.move_to_end(customer_id)
        if len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
