"""The decoded-state cache: only ever returns what the table holds now."""

from __future__ import annotations

from churnwatch.rules import CustomerState
from churnwatch.worker.state_cache import DecodedStates


def _state(customer_id: str, seen: int) -> CustomerState:
    return CustomerState(customer_id=customer_id, first_seen_at=seen, last_event_at=seen)


def test_a_value_written_by_this_worker_is_not_parsed_again() -> None:
    cache = DecodedStates(capacity=10)
    state = _state("c1", 100)
    raw = state.to_bytes()
    cache.remember("c1", raw, state)
    assert cache.decode("c1", raw) is state


def test_a_new_table_value_is_decoded_and_equal_bytes_are_not() -> None:
    cache = DecodedStates(capacity=10)
    old = _state("c1", 100)
    cache.remember("c1", old.to_bytes(), old)
    recovered = bytes(bytearray(_state("c1", 200).to_bytes()))  # e.g. from the changelog
    decoded = cache.decode("c1", recovered)
    assert decoded.first_seen_at == 200
    # Equal bytes in another object (as the on-disk store returns at every read): the cached state.
    assert cache.decode("c1", bytes(bytearray(recovered))) is decoded


def test_the_least_recently_used_customer_goes_first() -> None:
    cache = DecodedStates(capacity=2)
    values = {c: _state(c, n).to_bytes() for n, c in enumerate(("a", "b", "c"))}
    first_a = cache.decode("a", values["a"])
    cache.decode("b", values["b"])
    assert cache.decode("a", values["a"]) is first_a  # a is now the most recent
    cache.decode("c", values["c"])  # evicts b
    assert len(cache) == 2
    assert cache.decode("a", values["a"]) is first_a


def test_capacity_zero_keeps_nothing() -> None:
    cache = DecodedStates(capacity=0)
    raw = _state("c1", 1).to_bytes()
    assert cache.decode("c1", raw) == _state("c1", 1)
    assert len(cache) == 0


def test_states_are_stored_compressed_and_plain_json_from_earlier_versions_still_reads() -> None:
    state = _state("c1", 100)
    assert not state.to_bytes().startswith(b"{")
    plain = state.model_dump_json(exclude_defaults=True).encode()
    assert CustomerState.from_bytes(plain) == state
