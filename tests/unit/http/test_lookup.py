"""``GET /customers/{id}``'s answer, and which worker holds a customer."""

from __future__ import annotations

from churnwatch.http.lookup import CustomerLookup, partition_of
from churnwatch.model import ChurnModel
from churnwatch.offline.replay import Replay
from churnwatch.rules import RulesConfig
from churnwatch.testing.events import day, failed, login


def _lookup(holders: dict[str, dict[str, list[int]]] | None = None) -> CustomerLookup:
    replay = Replay(RulesConfig(), lambda alert: None)
    replay.feed_event(login(day(1), "acme"))
    replay.feed_event(failed(day(2), "card_expired", customer="acme"))
    return CustomerLookup(replay.states.get, ChurnModel(RulesConfig().model), 4, lambda: "state-changelog",
                          lambda: holders or {})


def test_a_known_customer_is_summed_up_with_its_open_episodes() -> None:
    summary = _lookup().summary("acme")
    assert summary is not None and summary["customer_id"] == "acme"
    assert [e["rule"] for e in summary["open_episodes"]] == ["payment_failure"]  # type: ignore[index, union-attr]
    assert summary["risk"]["model_ready"] is False  # type: ignore[index]


def test_an_unknown_customer_has_no_summary_and_its_owner_is_the_holder_of_its_partition() -> None:
    partition = partition_of("nobody", 4)
    holders = {"http://w1:6066": {"state-changelog": [p for p in range(4) if p != partition]},
               "http://w2:6066": {"state-changelog": [partition], "other": [0, 1, 2, 3]}}
    lookup = _lookup(holders)
    assert lookup.summary("nobody") is None
    assert lookup.owner("nobody") == "http://w2:6066"
    assert _lookup().owner("nobody") is None  # nobody holds it (yet)
