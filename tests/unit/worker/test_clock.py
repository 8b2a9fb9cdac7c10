"""The event clock's watermark: it waits for partitions that still have records queued."""

from __future__ import annotations

from churnwatch.worker.clock import EventClock as _EventClock
from churnwatch.worker.clock import Progress
from churnwatch.testing.events import day

WALL = [0.0]


def EventClock() -> _EventClock:  # noqa: N802 - a clock whose wall time the tests move
    WALL[0] = 0.0
    return _EventClock(idle_s=2.0, monotonic=lambda: WALL[0])


def quiet() -> None:
    WALL[0] += 5.0


def hw(**highwaters: int | None) -> dict[str, Progress]:
    return {source: Progress(value, None) for source, value in highwaters.items()}


def test_the_watermark_waits_for_the_slowest_partition_with_records_queued() -> None:
    clock = EventClock()
    clock.observe("a", 9, day(30))
    clock.observe("b", 0, day(2))
    quiet()
    # a is caught up (offset 9 of 10), b has 5 records waiting.
    assert clock.now(hw(a=10, b=6)) == day(2)
    clock.observe("b", 5, day(40))
    quiet()
    assert clock.now(hw(a=10, b=6)) == day(40)


def test_an_assigned_partition_not_read_yet_holds_the_clock() -> None:
    clock = EventClock()
    clock.observe("a", 0, day(5))
    quiet()
    assert clock.now(hw(a=1, b=None)) is None
    assert clock.now(hw(a=1, b=3)) is None
    assert clock.now(hw(a=1, b=0)) == day(5)  # b is empty: nothing to wait for


def test_a_partition_behind_the_swept_time_stops_the_sweep_until_it_catches_up() -> None:
    """A worker that takes over partitions: their customers must not be swept before their events are read."""
    clock = EventClock()
    clock.observe("a", 0, day(10))
    quiet()
    assert clock.now(hw(a=1)) == day(10)
    assert clock.now(hw(a=1, b=5)) is None  # b taken over, records waiting, none read yet
    clock.observe("b", 0, day(3))
    assert clock.now(hw(a=1, b=5)) is None  # b is at day 3: sweeping at day 10 would judge its customers early
    clock.observe("b", 1, day(11))
    assert clock.now(hw(a=1, b=5)) == day(11)
    clock.observe("b", 4, day(12))
    quiet()
    assert clock.now(hw(a=1, b=5)) == day(12)  # all caught up and quiet: the newest time seen
    assert clock.now(hw(a=1)) == day(12)  # b given away again: the watermark does not move back


def test_partitions_given_away_do_not_move_the_clock() -> None:
    clock = EventClock()
    clock.observe("gone", 0, day(50))
    clock.observe("a", 0, day(10))
    quiet()
    assert clock.now(hw(a=1)) == day(10)


def test_rejected_records_still_count_as_read() -> None:
    clock = EventClock()
    clock.observe("a", 0, day(1))
    clock.observe("a", 1, None)  # e.g. a dead letter
    quiet()
    assert clock.now(hw(a=2)) == day(1)
    assert clock.now(hw(a=3)) == day(1)


def test_a_partition_resumed_at_its_committed_offset_is_caught_up() -> None:
    clock = EventClock()
    clock.observe("a", 4, day(9))
    quiet()
    # b was processed by an earlier worker up to offset 99; nothing new to read.
    assert clock.now({"a": Progress(5, None), "b": Progress(100, 100)}) == day(9)
    fresh = EventClock()
    fresh.observe("a", 4, day(9))
    quiet()
    assert fresh.now({"a": Progress(5, None), "b": Progress(101, 100)}) is None  # one record waits


def test_a_partition_that_just_delivered_holds_even_if_it_looks_caught_up() -> None:
    """The consumer's high watermark is as old as its last fetch."""
    clock = EventClock()
    clock.observe("fast", 9, day(30))
    clock.observe("slow", 3, day(5))
    assert clock.now(hw(fast=10, slow=4)) == day(5)  # both look caught up; slow just delivered
    quiet()
    assert clock.now(hw(fast=10, slow=4)) == day(30)


def test_a_held_clock_says_which_partition_holds_it() -> None:
    clock = EventClock()
    clock.observe("a", 9, day(30))
    quiet()
    assert clock.now(hw(a=10, b=4)) is None
    assert clock.waiting_on == "b: next offset 0, high watermark 4, nothing read yet"
    clock.observe("b", 3, day(40))
    quiet()
    assert clock.now(hw(a=10, b=4)) == day(40) and clock.waiting_on is None
    clock.observe("a", 12, day(35))  # a moved on, read up to a time already swept
    assert clock.now(hw(a=20, b=4)) is None
    assert clock.waiting_on == (f"a: next offset 13, high watermark 20, read up to {day(35).isoformat()}, "
                                "behind the sweep's time")


def test_partitions_taken_over_with_nothing_to_read_start_at_their_states_newest_event() -> None:
    """A worker that joins after another has read the whole backlog reads nothing; it must still sweep."""
    clock = EventClock()
    quiet()
    assert clock.now(hw(a=4, b=7)) is None  # nothing read, nothing known: no time to sweep at
    clock.recovered(["a"], day(20))
    clock.recovered(["b"], day(30))
    clock.recovered(["b"], day(25))  # an older state read later does not move it back
    progress = {"a": Progress(4, 4), "b": Progress(7, 7)}  # committed at their ends: nothing waiting
    assert clock.now(progress) == day(30)
    assert clock.now({"a": Progress(4, 4)}) == day(30)  # b given away: the watermark does not move back
    taken = EventClock()
    taken.recovered(["a"], day(20))
    assert taken.now({"a": Progress(9, 4)}) is None  # records waiting on it: those come first
    taken.observe("a", 8, day(22))
    quiet()
    assert taken.now({"a": Progress(9, 4)}) == day(22)
