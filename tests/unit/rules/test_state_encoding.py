"""A stored state: what this version writes reads back whole, and what earlier versions wrote still reads."""

from __future__ import annotations

import zlib
from functools import cache

import msgspec
import pytest

from churnwatch.offline.replay import Replay
from churnwatch.offline.simulator import simulate
from churnwatch.rules import CustomerState, RulesConfig
from churnwatch.rules.recent_ids import RecentIds
from churnwatch.rules.state import (
    Downgrade,
    Driver,
    Episode,
    Failure,
    MrrChange,
    Observation,
    Risk,
    Sentiment,
    Snapshot,
    Subscription,
    TicketOpened,
    Warning,
    evolve,
)
from churnwatch.rules.state_encoding import FRAME, VERSION, Outline, StoredStateError, decode, encode, outline
from churnwatch.rules.state import pending_since


@cache
def replayed() -> tuple[CustomerState, ...]:
    """States a replay of a simulated base stores on its way (every 100th) and leaves: every kind of fact,
    snapshots, risks, open episodes, alerts waiting for their outcome."""
    events, _ = simulate(60, 120, seed=3)
    run = Replay(RulesConfig(), lambda alert: None)
    seen: list[CustomerState] = []
    puts = [0]
    put = run.states.put

    def kept(customer_id: str, state: CustomerState, partition: int) -> None:
        puts[0] += 1
        if puts[0] % 100 == 0:
            seen.append(state)
        put(customer_id, state, partition)

    run.states.put = kept  # type: ignore[method-assign]
    for event in events:
        run.feed_event(event)
    return (*run.states.values(), *seen)


def expected_outline(state: CustomerState) -> Outline:
    return Outline(state.customer_id, state.next_due_at, tuple(e.severity for e in state.episodes.values()),
                   pending_since(state), state.last_event_at)


def test_every_state_of_a_replay_reads_back_equal_and_its_outline_without_building_it() -> None:
    states = replayed()
    for holds in (lambda s: s.snapshots, lambda s: s.risk and s.risk.drivers, lambda s: s.episodes,
                  lambda s: s.mrr_changes, lambda s: s.tickets_opened, lambda s: s.failures, lambda s: s.warnings,
                  lambda s: len(s.recent_event_ids) > 100):
        assert any(holds(s) for s in states)  # the base exercises what a state holds
    for state in states:
        raw = encode(state)
        assert raw[:1] == VERSION
        back = decode(raw)
        assert back == state
        assert back.model_dump_json() == state.model_dump_json()
        assert outline(raw) == expected_outline(state)
        assert decode(FRAME + bytes(16) + raw) == state  # behind the worker's frame
        assert outline(FRAME + bytes(16) + raw) == expected_outline(state)


def test_values_earlier_versions_wrote_still_read() -> None:
    for state in replayed()[:10]:
        plain = state.model_dump_json(exclude_defaults=True).encode()  # early versions
        compressed = zlib.compress(plain, 1)  # version 1
        for raw in (plain, compressed, FRAME + bytes(16) + compressed):
            assert decode(raw) == state
            assert outline(raw) == expected_outline(state)


def test_the_stored_form_is_smaller_than_the_compressed_json_it_replaces() -> None:
    states = replayed()
    new = sum(len(encode(s)) for s in states)
    old = sum(len(zlib.compress(s.model_dump_json(exclude_defaults=True).encode(), 1)) for s in states)
    assert new < 0.85 * old


def test_a_value_written_before_the_last_fields_were_added_reads_them_as_their_defaults() -> None:
    state = evolve(replayed()[0], {"erased_at": 5, "next_due_at": 9})
    raw = encode(state)
    head = 3 + int.from_bytes(raw[1:3], "big")
    values = msgspec.msgpack.decode(zlib.decompress(raw[head:]))
    older = raw[:head] + zlib.compress(msgspec.msgpack.encode(values[:-2]))  # no erased_at, no next_due_at
    back = decode(older)
    assert back.erased_at is None and back.next_due_at is None
    assert evolve(back, {"erased_at": 5, "next_due_at": 9}) == state


def test_remembered_ids_of_any_shape_read_back() -> None:
    base = CustomerState(customer_id="c\x00 1", first_seen_at=1, last_event_at=9)
    for ids in ({}, {"c\x00 1-a": 3, "c\x00 1-b": 3}, {"c\x00 1-a": 1, "other": 2},
                {"x\x00y": 4, "x\x01z": 4, "": 7}, {"c\x00 1": 2}):
        state = evolve(base, {"recent_event_ids": RecentIds.of(ids)})
        back = decode(encode(state))
        assert back.recent_event_ids.as_dict() == ids
        assert back == state
    plain = evolve(base, {"customer_id": "c-1", "recent_event_ids": RecentIds.of({"c-1-a": 1, "c-1-b": 5})})
    assert decode(encode(plain)) == plain


@pytest.mark.parametrize("damage", [
    lambda raw: raw[:-5],  # cut short
    lambda raw: raw[:3 + int.from_bytes(raw[1:3], "big")] + zlib.compress(msgspec.msgpack.encode(["c", 1])),
    lambda raw: raw[:3 + int.from_bytes(raw[1:3], "big")] + zlib.compress(msgspec.msgpack.encode({"a": 1})),
    lambda raw: raw[:3 + int.from_bytes(raw[1:3], "big")] + zlib.compress(b"\xc1"),
])
def test_a_damaged_value_is_an_error_never_a_half_built_state(damage) -> None:
    with pytest.raises(StoredStateError, match="stored state"):
        decode(damage(encode(replayed()[0])))


def test_a_damaged_outline_is_an_error() -> None:
    raw = encode(replayed()[0])
    with pytest.raises(StoredStateError, match="outline"):
        outline(raw[:1] + raw[1:3] + b"\xc1" + raw[4:])


# Each model's fields as version 2 wrote them. Values are positional: a field is only ever added at the end
# (with a default), never inserted, renamed in place or removed, or every stored state would read wrong.
STORED_FIELDS = {
    CustomerState: (
        "customer_id", "first_seen_at", "last_event_at", "activity", "last_login_at", "first_activity_at",
        "last_activity_at", "failures", "last_payment_success_at", "tickets_opened", "tickets_closed_at",
        "sentiments", "subscription", "mrr_changes", "started_at", "cancelled_at", "downgrades", "recent_event_ids",
        "inputs", "snapshots", "last_snapshot_at", "risk", "episodes", "evaluated_at", "warnings",
        "churn_counted_at", "erased_at", "next_due_at"),
    Failure: ("at", "event_id", "invoice_id", "reason", "amount"),
    TicketOpened: ("at", "event_id", "ticket_id", "priority", "category"),
    Sentiment: ("at", "event_id", "value"),
    Downgrade: ("at", "event_id", "from_mrr", "to_mrr"),
    Subscription: ("as_of", "event_id", "action", "plan", "mrr", "renews_at", "cancel_reason",
                   "billing_period_months"),
    MrrChange: ("at", "event_id", "mrr", "action", "renews_at", "billing_period_months"),
    Observation: ("counts", "active_days_7", "active_days_28", "age_days", "tenure_days", "days_since_login",
                  "days_since_activity", "failures_30d", "unpaid_failures", "tickets_14d", "sentiment_14d", "mrr",
                  "downgrades_30d"),
    Snapshot: ("taken_at", "feature_set", "observation", "values", "probability", "raw"),
    Driver: ("name", "value", "contribution"),
    Risk: ("assessed", "assessed_at", "ready", "drivers", "stake", "rank", "population", "budget"),
    Episode: ("alert_id", "opened_at", "severity", "sequence"),
    Warning: ("rule", "alert_id", "at"),
}


@pytest.mark.parametrize("model", list(STORED_FIELDS), ids=lambda m: m.__name__)
def test_stored_models_only_grow_at_the_end(model) -> None:
    fields = tuple(model.model_fields)
    stored = STORED_FIELDS[model]
    assert fields[:len(stored)] == stored
    assert all(not model.model_fields[name].is_required() for name in fields[len(stored):])
