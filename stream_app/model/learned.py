"""Which labels a model has learned lately (or outcomes a scoreboard counted), so one delivered twice counts once.

Labels reach the model through a topic (churnwatch.worker.labels); a worker
that crashed before committing its input publishes some labels again when
it processes those messages again. A repeat comes soon after the first copy,
so a bounded memory of recent ids, saved with the model, is enough.
"""

from __future__ import annotations

from collections import OrderedDict

from churnwatch.rules.labels import Labelled

REMEMBERED_LABELS = 50_000


def label_id(label: Labelled) -> str:
    """A snapshot is labelled once: customer and snapshot time name it."""
    return f"{label.customer_id}@{label.taken_at}"


class LearnedRecently:
    """The ids of the labels learned lately, oldest forgotten first."""

    def __init__(self, capacity: int = REMEMBERED_LABELS, ids: list[str] | None = None) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict.fromkeys((ids or [])[-capacity:])

    def ids(self) -> list[str]:
        """Oldest first, for saving."""
        return list(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, key: str) -> bool:
        """True if new (and now remembered)."""
        if key in self._ids:
            return False
        self._ids[key] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return True
