"""The merge by event time: a group's partitions go to the core oldest first, waiting only for what may be older."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from churnwatch.schemas.dead_letter import RejectReason
from churnwatch.schemas.intake import Rejection
from churnwatch.testing import day, failed, login, ticket, usage
from churnwatch.worker.merge import Arrival, Decoded, EventTimeMerge, Source
from churnwatch.worker.sweep import SweepTick, decode_tick

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


def _merge(view: View, clock: Clock | None = None, **options: Any) -> EventTimeMerge:
    merge = EventTimeMerge(TOPICS, view, monotonic=clock or Clock(), **options)
    merge.assigned([(topic, p) for topic in TOPICS for p in (0, 1)])
    return merge


def _arrive(merge: EventTimeMerge, source: Source, offset: int, message: str, decoded: Decoded) -> Arrival:
    """The client hands the message over, then it comes in: the way every message reaches the merge."""
    merge.fetched(source, [offset])
    merge.returned()
    return merge.add(source, offset, message, decoded)[0]


def _read_to_end(view: View, *sources: Source, end: int = 0, polled: int = 10) -> None:
    """Nothing there (or all of it came in, up to ``end``), as of a fetch at ``polled``."""
    for source in sources:
        view.ends[source] = view.positions[source] = view.commits[source] = end
        view.polls[source] = polled


def _names(released: list[Any]) -> list[str]:
    return [held.message for held in released]


def test_a_partition_that_may_still_hold_something_older_is_waited_for() -> None:
    view = View()
    merge = _merge(view)
    _read_to_end(view, ("tickets", 0), ("subscriptions", 0))
    view.ends[("payments", 0)] = 5  # five payments not fetched yet
    _arrive(merge, ("usage", 0), 0, "u", login(day(3)))
    assert merge.take() == [] and merge.waited_on == ("payments", 0)
    _arrive(merge, ("payments", 0), 0, "p", failed(day(2)))
    assert _names(merge.take()) == ["p"]  # older: first; the usage waits for the next payment
    _arrive(merge, ("payments", 0), 1, "p2", failed(day(4)))
    assert _names(merge.take()) == ["u"]


def test_a_backlog_of_every_topic_comes_out_in_time_order_whatever_order_it_came_in() -> None:
    view = View()
    merge = _merge(view)
    for source in [(t, 0) for t in TOPICS]:
        view.ends[source] = 100
    _arrive(merge, ("subscriptions", 0), 0, "s9", login(day(9)))
    _arrive(merge, ("tickets", 0), 0, "t5", ticket(day(5)))
    _arrive(merge, ("payments", 0), 0, "p1", failed(day(1)))
    _arrive(merge, ("usage", 0), 0, "u2", login(day(2)))
    _arrive(merge, ("usage", 0), 1, "u6", login(day(6)))
    assert _names(merge.take()) == ["p1"]  # the payments partition may hold one of day 1.5
    _read_to_end(view, ("payments", 0), end=1)
    assert _names(merge.take()) == ["u2", "t5"]
    _read_to_end(view, ("tickets", 0), end=1)
    assert _names(merge.take()) == ["u6"]
    _read_to_end(view, ("usage", 0), end=2)
    assert _names(merge.take()) == ["s9"]


def test_a_sweep_tick_waits_for_the_older_events_of_its_partition_and_goes_before_later_ones() -> None:
    """A tick the partition's previous owner sent, read before the events it judged after: it waits for them."""
    view = View()
    merge = EventTimeMerge((*TOPICS, "ticks"), view, monotonic=Clock())
    merge.assigned([(topic, 0) for topic in (*TOPICS, "ticks")])
    _read_to_end(view, ("payments", 0), ("tickets", 0), ("subscriptions", 0))
    view.ends[("usage", 0)] = 5  # read again from an older offset
    tick = SweepTick(now=day(2), until=day(4))  # judges up to day 4
    _arrive(merge, ("ticks", 0), 0, "tick", tick)
    assert merge.take() == [] and merge.waited_on == ("usage", 0)
    _arrive(merge, ("usage", 0), 0, "u3", login(day(3)))
    assert _names(merge.take()) == ["u3"]
    _arrive(merge, ("usage", 0), 1, "u5", login(day(5)))
    assert _names(merge.take()) == ["tick"]  # before the event after its time
    view.ends[("ticks", 0)] = view.positions[("ticks", 0)] = 1
    view.polls[("ticks", 0)] = 10
    assert _names(merge.take()) == ["u5"]


def test_a_rejected_tick_goes_at_once() -> None:
    view = View()
    merge = EventTimeMerge((*TOPICS, "ticks"), view, monotonic=Clock())
    merge.assigned([(topic, 0) for topic in (*TOPICS, "ticks")])
    _arrive(merge, ("ticks", 0), 0, "bad", decode_tick(b"{}"))
    assert _names(merge.take()) == ["bad"]


def test_ties_go_by_event_id_and_one_partition_keeps_its_offset_order() -> None:
    view = View()
    merge = _merge(view)
    _read_to_end(view, ("subscriptions", 0))
    at = day(3)
    _arrive(merge, ("payments", 0), 0, "b", failed(at, event_id="b"))
    _arrive(merge, ("tickets", 0), 0, "a", usage(at, event_id="a"))
    # Out of time order within one partition: offset order holds, the later-offset old event comes after.
    _arrive(merge, ("usage", 0), 0, "u-late", login(day(4)))
    _arrive(merge, ("usage", 0), 1, "u-early", login(day(1)))
    _read_to_end(view, ("payments", 0), ("tickets", 0), end=1)
    _read_to_end(view, ("usage", 0), end=2)
    released = merge.take()
    assert _names(released) == ["a", "b", "u-late", "u-early"]
    assert [h.late for h in released] == [False, False, False, True]


def test_an_empty_partition_lets_the_head_go_only_after_a_fetch_no_older_than_the_heads() -> None:
    """However long it takes: a partition not fetched since may have got something older meanwhile."""
    view = View()
    clock = Clock()
    merge = _merge(view, clock)
    _read_to_end(view, ("tickets", 0), ("subscriptions", 0), ("payments", 0), polled=10)
    _read_to_end(view, ("usage", 0), end=1, polled=20)
    _arrive(merge, ("usage", 0), 0, "u", login(day(3)))  # came with the fetch of time 20
    assert merge.take() == []  # the payments partition was last fetched before: a payment may be on its way
    clock.now += 3600  # the broker does not answer
    assert merge.take() == [] and merge.waited_on is not None
    for source in [("tickets", 0), ("subscriptions", 0), ("payments", 0)]:
        view.polls[source] = 20
    assert _names(merge.take()) == ["u"]


def test_a_partition_that_ends_with_a_transaction_marker_counts_as_read_to_its_end() -> None:
    """What ends it is no record: the client's position passed the marker when it handed the rest over."""
    view = View()
    merge = _merge(view)
    _read_to_end(view, ("tickets", 0), ("subscriptions", 0), polled=10)
    _read_to_end(view, ("payments", 0), end=3, polled=10)  # offset 2 is a marker: 0 and 1 came in, the end is 3
    _read_to_end(view, ("usage", 0), end=1, polled=10)
    _arrive(merge, ("payments", 0), 1, "p", failed(day(1)))
    _arrive(merge, ("usage", 0), 0, "u", login(day(2)))
    assert _names(merge.take()) == ["p", "u"]


def test_a_position_the_client_moved_since_it_last_handed_records_over_is_not_trusted() -> None:
    """The client moves its position as it hands records over, before they reach the worker: in transit."""
    view = View()
    merge = _merge(view)
    _read_to_end(view, ("tickets", 0), ("subscriptions", 0), polled=10)
    _read_to_end(view, ("usage", 0), end=1, polled=10)
    view.ends[("payments", 0)], view.positions[("payments", 0)], view.polls[("payments", 0)] = 5, 0, 10
    _arrive(merge, ("usage", 0), 0, "u", login(day(2)))
    view.positions[("payments", 0)] = 5  # handed over in the client's thread, not returned here yet
    assert merge.take() == [] and merge.waited_on == ("payments", 0)
    merge.returned()  # returned with no records: they were markers after all
    assert _names(merge.take()) == ["u"]


def test_a_partition_with_records_not_fetched_or_not_come_in_is_waited_for_however_long() -> None:
    view = View()
    clock = Clock()
    merge = _merge(view, clock)
    _read_to_end(view, ("tickets", 0), ("subscriptions", 0), ("usage", 0), end=1)
    view.ends[("payments", 0)], view.positions[("payments", 0)] = 7, 4  # three to fetch
    _arrive(merge, ("usage", 0), 0, "u", login(day(2)))
    clock.now += 3600
    assert merge.take() == [] and merge.waited_on == ("payments", 0)
    # Fetched to its end, but the last one is still on its way here (in Faust's queue).
    view.positions[("payments", 0)] = 7
    merge.fetched(("payments", 0), [6])
    merge.returned()
    assert merge.take() == []
    assert merge.add(("payments", 0), 6, "p", failed(day(3)))[0] is Arrival.QUEUED
    assert _names(merge.take()) == ["u", "p"]


def test_a_rejected_message_at_the_head_goes_at_once() -> None:
    view = View()
    merge = _merge(view)
    view.ends[("payments", 0)] = 9
    _arrive(merge, ("usage", 0), 0, "bad", Rejection(RejectReason.NOT_JSON, "not JSON"))
    _arrive(merge, ("usage", 0), 1, "u", login(day(3)))
    assert _names(merge.take()) == ["bad"]


def test_groups_are_independent_and_a_partition_read_far_ahead_is_held_back() -> None:
    view = View()
    merge = _merge(view, hold_limit=4)
    _read_to_end(view, *[(t, 1) for t in TOPICS])
    for offset in range(6):
        _arrive(merge, ("usage", 0), offset, f"u{offset}", login(day(10 + offset)))
    view.ends[("payments", 0)] = 1  # group 0 waits for a payment
    _arrive(merge, ("tickets", 1), 0, "t", ticket(day(1)))
    assert _names(merge.take()) == ["t"]  # group 1 is not held up by group 0
    assert merge.held == {("usage", 0)}
    _read_to_end(view, *[(t, 0) for t in TOPICS if t != "usage"])
    assert len(merge.take()) == 6 and merge.held == set()


def test_a_rebalance_drops_what_waits_and_forgets_the_order_gone_on() -> None:
    view = View()
    merge = _merge(view)
    view.ends[("payments", 0)] = 1
    _arrive(merge, ("usage", 0), 0, "u", login(day(3)))
    assert merge.take() == []
    assert _names(merge.drop()) == ["u"] and len(merge) == 0
    merge.assigned([("usage", 1)])
    _arrive(merge, ("usage", 1), 0, "again", login(day(3)))
    assert _names(merge.take()) == ["again"]


def test_an_empty_partition_never_fetched_counts_from_its_committed_offset() -> None:
    view = View()
    merge = _merge(view)
    _read_to_end(view, ("tickets", 0), ("subscriptions", 0))
    view.ends[("payments", 0)], view.positions[("payments", 0)], view.polls[("payments", 0)] = 40, 0, 10
    _arrive(merge, ("usage", 0), 0, "u", login(day(3)))
    assert merge.take() == []  # 40 payments, none fetched yet: as far as it knows, read from the start
    view.commits[("payments", 0)] = 40  # everything there was processed before the restart
    assert _names(merge.take()) == ["u"]


def test_a_message_handed_over_that_never_came_is_read_again_and_nothing_after_it_goes_first() -> None:
    """Faust's stream drops a message taken while the app's flow is stopped: found, and read again."""
    view = View()
    merge = _merge(view)
    _read_to_end(view, *[(t, 0) for t in TOPICS if t != "subscriptions"])
    source = ("subscriptions", 0)
    view.ends[source] = 4
    merge.fetched(source, [0, 1, 2, 3])
    assert merge.add(source, 0, "s0", login(day(1)))[0] is Arrival.QUEUED
    assert merge.add(source, 1, "s1", login(day(2)))[0] is Arrival.QUEUED
    assert merge.add(source, 3, "s3", login(day(4))) == (Arrival.GAP, 2)  # 2 never came: read again from it
    assert merge.add(source, 3, "s3-stale", login(day(4)))[0] is Arrival.REPEAT  # still queued in Faust: let go
    merge.fetched(source, [2, 3])  # the client hands them over again
    assert merge.add(source, 2, "s2", login(day(3)))[0] is Arrival.QUEUED
    assert merge.add(source, 3, "s3", login(day(4)))[0] is Arrival.QUEUED
    assert merge.add(source, 1, "s1-again", login(day(2)))[0] is Arrival.REPEAT
    _read_to_end(view, source, end=4)
    assert _names(merge.take()) == ["s0", "s1", "s2", "s3"]


def test_a_message_that_never_comes_with_nothing_after_it_is_read_again_after_a_while() -> None:
    view = View()
    clock = Clock()
    merge = _merge(view, clock, stuck_s=30.0)
    source = ("tickets", 0)
    merge.fetched(source, [7])
    clock.now += 10
    assert merge.stuck() == []
    clock.now += 25
    assert merge.stuck() == [(source, 7)]
    assert merge.stuck() == []  # asked once
    clock.now += 31
    assert merge.stuck() == [(source, 7)]  # and again, if it still does not come
    assert merge.add(source, 7, "t7", ticket(day(1)))[0] is Arrival.QUEUED
    clock.now += 31
    assert merge.stuck() == []
