"""Actions in time order however many there are: sorted in bounded chunks, spilled to disk, merged.

Memory follows the chunk size, not the file.
"""

from __future__ import annotations

import heapq
import pickle
from collections.abc import Iterable, Iterator
from pathlib import Path

SORT_CHUNK = 250_000  # actions sorted in memory at a time
PICKLE_BATCH = 2_000
# (time in seconds, row number, customer, action name, value): sorts by time, then file order.
Action = tuple[int, int, str, str, float | None]


def time_ordered(actions: Iterable[Action], directory: Path, chunk: int = SORT_CHUNK) -> Iterator[Action]:
    """The actions sorted by (time, file order): chunks sorted in memory, spilled to disk, merged."""
    runs: list[Path] = []
    batch: list[Action] = []
    for action in actions:
        batch.append(action)
        if len(batch) >= chunk:
            runs.append(_spill(sorted(batch), directory, len(runs)))
            batch = []
    if not runs:
        yield from sorted(batch)
        return
    if batch:
        runs.append(_spill(sorted(batch), directory, len(runs)))
    yield from heapq.merge(*(_unspill(run) for run in runs))


def _spill(batch: list[Action], directory: Path, n: int) -> Path:
    path = directory / f"run-{n:05d}.pickle"
    with path.open("wb") as out:
        for i in range(0, len(batch), PICKLE_BATCH):
            pickle.dump(batch[i:i + PICKLE_BATCH], out, protocol=pickle.HIGHEST_PROTOCOL)
    return path


def _unspill(path: Path) -> Iterator[Action]:
    with path.open("rb") as source:
        while True:
            try:
                yield from pickle.load(source)  # our own file, written by _spill
            except EOFError:
                break
    path.unlink()
