"""The merge by event time: a group's partitions go to the core oldest first, waiting only for what may be older."""

from __future__ import annotations

from dataclasses import dataclass, field

from churnwatch.schemas.dead_letter import RejectReason
from churnwatch.schemas.intake import Rejection
from churnwatch.testing import day, failed, login, ticket, usage
from churnwatch.worker.merge import EventTimeMerge, Source

TOPICS = ("usage", "payments", "tickets", "subscriptions")


@dataclass
class View:
    """What the Kafka client knows: set by each test."""

    ends: dict[Source, int] = field(default_factory=dict)
    polls: dict[Source, int] = field(default_factory=dict)
    positions: dict[Source, int] = field(default_factory=dict)
    commits: dict[Source, int] = field(default_factory=dict)

    def highwater(self, source: Source) -> int | None:
        return self.ends.get(source)

    def polled_at(self, source: Source) -> int | None:
        return self.polls.get(source)

    def position(self, source: Source) -> int | None:
        return self.positions.get(source)

    def committed(self, source: Source) -> int | None:
        return self.commits.get(source)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _merge(view: View, clock: Clock | None = None, **options: object) -> EventTimeMerge:
    merge = EventTimeMerge(TOPICS, view, monotonic=clock or Clock(), **options)  # type: ignore[arg-type]
    merge.assigned([(topic, p) for topic in TOPICS for p in (0, 1)])
    return merge


def _caught_up(view: View, *sources: Source, end: int = 0, polled: int = 10) -> None:
    for source in sources:
        view.ends[source] = view.positions[source] = end
        view.polls[source] = polled


def test_a_partition_that_may_still_hold_something_older_is_waited_for() -> None:
    view = View()
    merge = _merge(view)
    _caught_up(view, ("tickets", 0), ("subscriptions", 0))
    view.ends[("payments", 0)] = 5  # five payments not fetched yet
    merge.add(("usage", 0), 0, "u", login(day(3)))
    assert merge.take() == [] and merge.waited_on == ("payments", 0)
    merge.add(("payments", 0), 0, "p", failed(day(2)))
    assert [h.message for h in merge.take()] == ["p"]  # older: first; the usage waits for the next payment
    merge.add(("payments", 0), 1, "p2", failed(day(4)))
    assert [h.message for h in merge.take()] == ["u"]


def test_a_backlog_of_every_topic_comes_out_in_time_order_whatever_order_it_came_in() -> None:
    view = View()
    merge = _merge(view)
    for source in [(t, 0) for t in TOPICS]:
        view.ends[source] = 100
    merge.add(("subscriptions", 0), 0, "s9", login(day(9)))
    merge.add(("tickets", 0), 0, "t5", ticket(day(5)))
    merge.add(("payments", 0), 0, "p1", failed(day(1)))
    merge.add(("usage", 0), 0, "u2", login(day(2)))
    merge.add(("usage", 0), 1, "u6", login(day(6)))
    # Each partition has records to come: nothing older than a head of another may go on before it.
    assert [h.message for h in merge.take()] == ["p1"]  # the payments partition may hold one of day 1.5
    _caught_up(view, ("payments", 0), end=1)
    assert [h.message for h in merge.take()] == ["u2", "t5"]
    _caught_up(view, ("tickets", 0), end=1)
    assert [h.message for h in merge.take()] == ["u6"]
    _caught_up(view, ("usage", 0), end=2)
    assert [h.message for h in merge.take()] == ["s9"]


def test_ties_go_by_event_id_and_one_partition_keeps_its_offset_order() -> None:
    view = View()
    merge = _merge(view)
    _caught_up(view, ("subscriptions", 0))
    at = day(3)
    merge.add(("payments", 0), 0, "b", failed(at, event_id="b"))
    merge.add(("tickets", 0), 0, "a", usage(at, event_id="a"))
    # Out of time order within one partition: offset order holds, the later-offset old event comes after.
    merge.add(("usage", 0), 0, "u-late", login(day(4)))
    merge.add(("usage", 0), 1, "u-early", login(day(1)))
    _caught_up(view, ("payments", 0), ("tickets", 0), end=1)
    _caught_up(view, ("usage", 0), end=2)
    released = merge.take()
    assert [h.message for h in released] == ["a", "b", "u-late", "u-early"]
    assert [h.late for h in released] == [False, False, False, True]


def test_an_empty_partition_lets_the_head_go_only_after_a_fetch_no_older_than_the_heads() -> None:
    view = View()
    clock = Clock()
    merge = _merge(view, clock, wait_s=1.0)
    _caught_up(view, ("tickets", 0), ("subscriptions", 0), ("payments", 0), polled=10)
    view.ends[("usage", 0)] = view.positions[("usage", 0)] = 1
    view.polls[("usage", 0)] = 20
    merge.add(("usage", 0), 0, "u", login(day(3)))  # came with the fetch of time 20
    assert merge.take() == []  # the payments partition was last fetched before: a payment may be on its way
    for source in [("tickets", 0), ("subscriptions", 0), ("payments", 0)]:
        view.polls[source] = 20
    assert [h.message for h in merge.take()] == ["u"]


def test_with_records_fetched_but_none_come_in_the_head_goes_after_the_wait() -> None:
    """Transaction markers at a partition's end (or a broker that stopped answering): bounded, not stuck."""
    view = View()
    clock = Clock()
    merge = _merge(view, clock, wait_s=1.0)
    _caught_up(view, ("tickets", 0), ("subscriptions", 0), polled=10)
    _caught_up(view, ("payments", 0), end=3, polled=10)  # offset 2 is a marker: 2 came in, the end is 3
    _caught_up(view, ("usage", 0), end=1, polled=10)
    merge.add(("payments", 0), 1, "p", failed(day(1)))
    merge.add(("usage", 0), 0, "u", login(day(2)))
    assert [h.message for h in merge.take()] == ["p"]
    assert merge.take() == [] and merge.waited_on == ("payments", 0)
    clock.now += 0.5
    assert merge.take() == []
    clock.now += 0.6
    assert [h.message for h in merge.take()] == ["u"]


def test_a_partition_with_records_not_fetched_yet_is_waited_for_however_long() -> None:
    view = View()
    clock = Clock()
    merge = _merge(view, clock, wait_s=1.0)
    _caught_up(view, ("tickets", 0), ("subscriptions", 0), ("usage", 0), end=1)
    view.ends[("payments", 0)] = 7
    view.positions[("payments", 0)] = 4
    merge.add(("usage", 0), 0, "u", login(day(2)))
    clock.now += 3600
    assert merge.take() == [] and merge.waited_on == ("payments", 0)


def test_a_rejected_message_at_the_head_goes_at_once() -> None:
    view = View()
    merge = _merge(view)
    view.ends[("payments", 0)] = 9
    merge.add(("usage", 0), 0, "bad", Rejection(RejectReason.NOT_JSON, "not JSON"))
    merge.add(("usage", 0), 1, "u", login(day(3)))
    assert [h.message for h in merge.take()] == ["bad"]


def test_groups_are_independent_and_a_partition_read_far_ahead_is_held_back() -> None:
    view = View()
    merge = _merge(view, hold_limit=4)
    _caught_up(view, *[(t, 1) for t in TOPICS])
    for offset in range(6):
        merge.add(("usage", 0), offset, f"u{offset}", login(day(10 + offset)))
    view.ends[("payments", 0)] = 1  # group 0 waits for a payment
    merge.add(("tickets", 1), 0, "t", ticket(day(1)))
    assert [h.message for h in merge.take()] == ["t"]  # group 1 is not held up by group 0
    assert merge.held == {("usage", 0)}
    _caught_up(view, *[(t, 0) for t in TOPICS if t != "usage"])
    assert len(merge.take()) == 6 and merge.held == set()


def test_a_rebalance_drops_what_waits_and_forgets_the_order_gone_on() -> None:
    view = View()
    merge = _merge(view)
    view.ends[("payments", 0)] = 1
    merge.add(("usage", 0), 0, "u", login(day(3)))
    assert merge.take() == []
    assert [h.message for h in merge.drop()] == ["u"] and len(merge) == 0
    merge.assigned([("usage", 1)])
    merge.add(("usage", 1), 0, "again", login(day(3)))
    assert [h.message for h in merge.take()] == ["again"]


def test_an_empty_partition_never_read_counts_from_its_committed_offset() -> None:
    view = View()
    merge = _merge(view)
    _caught_up(view, ("tickets", 0), ("subscriptions", 0))
    view.ends[("payments", 0)] = view.positions[("payments", 0)] = 40
    view.polls[("payments", 0)] = 10
    merge.add(("usage", 0), 0, "u", login(day(3)))
    assert merge.take() == []
    view.commits[("payments", 0)] = 40  # everything there was processed before the restart
    assert [h.message for h in merge.take()] == ["u"]
