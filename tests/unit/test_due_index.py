"""The sweep's due index: earliest first, superseded times skipped, bounded work."""

from __future__ import annotations

from churnwatch.due_index import Due, DueIndex


def test_pops_only_what_is_due_earliest_first() -> None:
    index = DueIndex()
    index.set("a", 30, 0)
    index.set("b", 10, 1)
    index.set("c", 20, 2)
    assert index.pop_due(20, limit=10) == [Due("b", 10, 1), Due("c", 20, 2)]
    assert index.pop_due(25, limit=10) == []
    assert len(index) == 1 and index.next_due_at() == 30


def test_a_new_time_supersedes_the_old_and_none_removes() -> None:
    index = DueIndex()
    index.set("a", 10, 0)
    index.set("a", 50, 0)
    index.set("b", 10, 0)
    index.set("b", None, 0)
    assert index.pop_due(40, limit=10) == []
    assert index.pop_due(50, limit=10) == [Due("a", 50, 0)]


def test_the_limit_leaves_the_rest_for_the_next_sweep() -> None:
    index = DueIndex()
    for n in range(10):
        index.set(f"c{n}", n, 0)
    assert [d.customer_id for d in index.pop_due(100, limit=4)] == ["c0", "c1", "c2", "c3"]
    assert len(index.pop_due(100, limit=100)) == 6


def test_the_heap_is_compacted_when_superseded_entries_pile_up() -> None:
    index = DueIndex()
    for due in range(5000):
        index.set("busy", due, 0)
    assert len(index) == 1
    assert len(index._heap) <= 2 * len(index) + 1024 + 1
    assert index.pop_due(10**9, limit=10) == [Due("busy", 4999, 0)]
