"""``GET /customers/{id}``'s answer, and which worker holds a customer."""

from __future__ import annotations

import math

from churnwatch.http.lookup import CustomerLookup, partition_of
from churnwatch.model import ChurnModel
from churnwatch.offline.replay import Replay
from churnwatch.rules import RulesConfig
from churnwatch.rules.clock_math import to_seconds
from churnwatch.schemas.events import ErasureRequest
from churnwatch.testing.events import day, failed, login


def _lookup(holders: dict[str, dict[str, list[int]]] | None = None, now: int | None = None) -> CustomerLookup:
    replay = Replay(RulesConfig(), lambda alert: None)
    replay.feed_event(login(day(1), "acme"))
    replay.feed_event(failed(day(2), "card_expired", customer="acme"))
    return CustomerLookup(replay.states.get, ChurnModel(RulesConfig().model), 4, lambda: "state-changelog",
                          lambda: holders or {}, lambda: now)


def test_a_known_customer_is_summed_up_with_its_open_episodes() -> None:
    summary = _lookup().summary("acme")
    assert summary is not None and summary["customer_id"] == "acme"
    assert [e["rule"] for e in summary["open_episodes"]] == ["payment_failure"]
    risk = summary["risk"]
    assert risk["model_ready"] is False and risk["probability"] is None


def test_features_read_in_plain_units_beside_the_models_inputs() -> None:
    summary = _lookup().summary("acme")  # no clock known yet: as of the last event
    assert summary is not None and summary["as_of"] == day(2).isoformat().replace("+00:00", "Z")
    features, inputs = summary["features"], summary["model_inputs"]
    # Seen on day 1 and 2: one day of tenure at its last event, one login, one unpaid failure.
    assert features["tenure_days"] == 1.0 and features["unpaid_failures"] == 1
    assert features["days_since_login"] == 1.0 and features["active_days_28"] == 1
    assert features["usage"]["login"] == {"last_7_days": 1, "last_28_days": 1, "28_days_before": 0}
    assert inputs["tenure_days"] == round(math.log1p(1.0), 4)


def test_an_unknown_customer_has_no_summary_and_its_owner_is_the_holder_of_its_partition() -> None:
    partition = partition_of("nobody", 4)
    holders = {"http://w1:6066": {"state-changelog": [p for p in range(4) if p != partition]},
               "http://w2:6066": {"state-changelog": [partition], "other": [0, 1, 2, 3]}}
    lookup = _lookup(holders)
    assert lookup.summary("nobody") is None
    assert lookup.owner("nobody") == "http://w2:6066"
    assert _lookup().owner("nobody") is None  # nobody holds it (yet)


def test_a_silent_customer_reads_as_silent_now_not_as_of_their_last_event() -> None:
    """Looked up with the worker's clock at day 51: seven weeks without a login, not one day."""
    summary = _lookup(now=to_seconds(day(51))).summary("acme")
    assert summary is not None and summary["as_of"] == day(51).isoformat().replace("+00:00", "Z")
    features = summary["features"]
    assert features["days_since_login"] == 50.0 and features["tenure_days"] == 50.0
    assert features["active_days_28"] == 0
    # A clock behind the customer's last event (a partition read ahead) does not take the answer back.
    earlier = _lookup(now=to_seconds(day(1))).summary("acme")
    assert earlier is not None and earlier["features"]["days_since_login"] == 1.0


def test_an_erased_customer_reads_as_erased_and_nothing_else() -> None:
    replay = Replay(RulesConfig(), lambda alert: None)
    replay.feed_event(login(day(1), "acme"))
    replay.feed_event(ErasureRequest(event_id="x-1", customer_id="acme", occurred_at=day(3)))
    lookup = CustomerLookup(replay.states.get, ChurnModel(RulesConfig().model), 4, lambda: "state-changelog",
                            lambda: {}, lambda: to_seconds(day(5)))
    assert lookup.summary("acme") == {"customer_id": "acme", "as_of": day(5).isoformat().replace("+00:00", "Z"),
                                      "erased_at": day(3).isoformat().replace("+00:00", "Z")}
