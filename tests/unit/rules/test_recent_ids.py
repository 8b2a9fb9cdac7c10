"""The remembered event ids: the newest by (time, id) whatever the arrival order, any id text."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from churnwatch.rules.recent_ids import RecentIds
from churnwatch.rules.state import CustomerState

ids = st.dictionaries(st.text(min_size=1, max_size=6, alphabet=st.sampled_from("ab\x00\x01\x02\x03 é")),
                      st.integers(min_value=0, max_value=20), max_size=30)


@given(ids, st.integers(min_value=1, max_value=12), st.randoms())
def test_the_newest_are_kept_whatever_the_order(seen: dict[str, int], limit: int, rng) -> None:
    arrivals = list(seen.items())
    rng.shuffle(arrivals)
    kept = RecentIds()
    for event_id, at in arrivals:
        kept = kept.with_id(event_id, at, limit)
    newest = sorted(seen.items(), key=lambda item: (item[1], item[0]))[-limit:] if seen else []
    assert list(kept.items()) == newest
    assert kept == RecentIds.of(dict(newest))
    for event_id in seen:
        assert (event_id in kept) == (event_id in dict(newest))


@given(ids, st.integers(min_value=0, max_value=21))
def test_since_drops_what_is_older_and_state_json_keeps_the_ids(seen: dict[str, int], cutoff: int) -> None:
    remembered = RecentIds.of(seen)
    assert remembered.since(cutoff).as_dict() == {e: t for e, t in seen.items() if t >= cutoff}
    state = CustomerState(customer_id="c", first_seen_at=0, last_event_at=0, recent_event_ids=seen)
    again = CustomerState.from_bytes(state.to_bytes())
    assert again == state and again.recent_event_ids.as_dict() == seen
    assert state.model_dump()["recent_event_ids"] == dict(sorted(seen.items(), key=lambda i: (i[1], i[0])))


def test_a_part_of_an_id_is_not_the_id() -> None:
    remembered = RecentIds.of({"ab": 1, "a\x00b": 2, "c\x01": 3})
    assert "ab" in remembered and "a\x00b" in remembered and "c\x01" in remembered
    assert "a" not in remembered and "b" not in remembered and "c" not in remembered and "\x00" not in remembered
