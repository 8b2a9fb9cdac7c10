"""The online model: features, delayed labels, learning, explanations, persistence."""

from __future__ import annotations

import json
import math
import random
from datetime import timedelta
from pathlib import Path

import pytest

from rules import CustomerState, RulesConfig, apply_event, evaluate
from rules.clock_math import DAY, to_seconds
from rules.config import ModelConfig
from rules.features import FEATURE_NAMES, features, from_vector, to_vector
from rules.labels import Labelled, label_snapshots
from rules.model_risk import Score
from schemas.alert import RuleName
from schemas.events import Event
from stream_app.churn_model import ChurnModel
from stream_app.cli import main
from stream_app.simulator import simulate, write_simulation
from tests.event_factory import day, failed, login, subscription, ticket, usage


def fold(events: list[Event], config: RulesConfig = RulesConfig(), scorer=None) -> tuple[CustomerState, list[Labelled]]:  # type: ignore[no-untyped-def]
    state = None
    labelled: list[Labelled] = []
    for event in events:
        transition = apply_event(state, event, event.occurred_at, config, scorer)
        state = transition.state
        labelled += transition.labelled
    assert state is not None
    return state, labelled


# --- features ------------------------------------------------------------------


def test_features_read_the_state_at_a_moment() -> None:
    state, _ = fold([
        subscription(day(0), 99.0, action="started"),
        login(day(1)), login(day(25)),
        usage(day(20), quantity=4), usage(day(26), quantity=2), usage(day(26), "session", 6),
        failed(day(24)),
        ticket(day(22), sentiment=-0.5), ticket(day(27), sentiment=0.1),
    ])
    values = features(state, to_seconds(day(28)))
    assert set(values) == set(FEATURE_NAMES)
    assert values["purchase_7d"] == pytest.approx(math.log1p(2))
    assert values["purchase_30d"] == pytest.approx(math.log1p(6))
    assert values["purchase_share_30d"] == pytest.approx(6 / 14)
    assert values["session_share_30d"] == pytest.approx(6 / 14)
    assert values["days_since_login"] == pytest.approx(math.log1p(3))
    assert values["failures_30d"] == pytest.approx(math.log1p(1))
    assert values["unpaid_failures"] == pytest.approx(math.log1p(1))
    assert values["tickets_14d"] == pytest.approx(math.log1p(2))
    assert values["sentiment_14d"] == pytest.approx(-0.2)
    assert values["tenure_days"] == pytest.approx(math.log1p(28))
    assert values["log_mrr"] == pytest.approx(math.log1p(99))
    assert values["active_days_30d"] == pytest.approx(4 / 30)  # days 1, 20, 25, 26
    assert from_vector(to_vector(values)) == pytest.approx(values, abs=1e-4)


# --- labels --------------------------------------------------------------------

CONFIG = RulesConfig()


def test_a_cancellation_within_the_horizon_labels_earlier_snapshots_one() -> None:
    events: list[Event] = [subscription(day(0), 50, action="started")]
    events += [login(day(d)) for d in range(0, 45)]
    state, labelled = fold(events)
    taken = [x.taken_at for x in labelled] + [s.taken_at for s in state.snapshots]
    # Weekly from the first usage.
    assert taken == [to_seconds(day(d)) for d in range(7, 45, 7)]
    # Snapshots up to day 14 are 30 days old by day 44: labelled 0.
    assert [(x.taken_at, x.label) for x in labelled] == [(to_seconds(day(d)), 0) for d in (7, 14)]

    cancelled = apply_event(state, subscription(day(45), 0, action="cancelled", previous_mrr=50), day(45))
    assert cancelled.labelled == ()  # labels come with the model's next look: the sweep, at once
    assert cancelled.state is not None and cancelled.state.next_due_at == to_seconds(day(45)) + 1
    after = evaluate(cancelled.state, day(45) + timedelta(seconds=1))
    assert [(x.taken_at, x.label) for x in after.labelled] == [
        (to_seconds(day(d)), 1) for d in (21, 28, 35, 42)]
    assert after.state is not None and after.state.snapshots == ()
    # No snapshots after churn: nothing left to predict.
    later = evaluate(after.state, day(80))
    assert later.state is not None and later.state.snapshots == () and later.labelled == ()


def test_no_label_comes_from_the_future() -> None:
    state, labelled = fold([subscription(day(0), 50, action="started"), login(day(1)), login(day(8))])
    assert labelled == []
    snapshot = state.snapshots[0]
    # The horizon has not passed: no label yet, whatever happens later.
    pending, none = label_snapshots(state, snapshot.taken_at + 30 * DAY - 1, CONFIG)
    assert none == [] and pending.snapshots == state.snapshots
    # A cancellation that is later than "now" does not label anything yet.
    cancelled_later = state.model_copy(update={"cancelled_at": snapshot.taken_at + 20 * DAY})
    _, early = label_snapshots(cancelled_later, snapshot.taken_at + 10 * DAY, CONFIG)
    assert early == []
    # A cancellation past the horizon is not this snapshot's churn.
    cancelled_late = state.model_copy(update={"cancelled_at": snapshot.taken_at + 31 * DAY})
    _, (late,) = label_snapshots(cancelled_late, snapshot.taken_at + 31 * DAY, CONFIG)
    assert late.label == 0


def test_inactivity_labels_for_businesses_without_subscriptions() -> None:
    config = RulesConfig(model=ModelConfig(label="inactivity", inactive_days=20))
    active = [usage(day(d)) for d in range(0, 60)]
    _, labelled = fold(active, config)
    assert labelled and {x.label for x in labelled} == {0}
    goes_quiet = [usage(day(d)) for d in range(0, 15)] + [login(day(70))]
    _, labelled = fold(goes_quiet, config)
    assert [x.label for x in labelled if x.taken_at <= to_seconds(day(14))] == [1, 1]


# --- the model -------------------------------------------------------------------


def _example(rng: random.Random, churner: bool) -> dict[str, float]:
    values = dict.fromkeys(FEATURE_NAMES, 0.0)
    values["login_30d"] = math.log1p(rng.gauss(4 if churner else 20, 3) if not churner else max(0, rng.gauss(4, 3)))
    values["days_since_login"] = math.log1p(max(0.0, rng.gauss(20 if churner else 2, 4)))
    values["tenure_days"] = math.log1p(rng.uniform(30, 600))
    return values


def trained(n: int = 3000, seed: int = 1) -> ChurnModel:
    rng = random.Random(seed)
    model = ChurnModel(ModelConfig(learning_rate=0.01, min_labels=100))
    for i in range(n):
        churner = rng.random() < 0.15
        model.learn(Labelled("c", i, to_vector(_example(rng, churner)), None, int(churner)))
    return model


def test_the_explanation_names_the_feature_that_was_changed() -> None:
    model = trained()
    base = dict.fromkeys(FEATURE_NAMES, 0.0)
    base.update(login_30d=math.log1p(20), days_since_login=math.log1p(2), tenure_days=math.log1p(300))
    silent = {**base, "days_since_login": math.log1p(40)}
    calm, worried = model.score(base, True), model.score(silent, True)
    assert worried.probability > calm.probability
    assert worried.drivers and worried.drivers[0].name == "days_since_login"
    assert worried.drivers[0].value == pytest.approx(math.log1p(40))


def test_a_restored_model_scores_exactly_as_before(tmp_path: Path) -> None:
    model = trained(500)
    values = _example(random.Random(9), churner=True)
    path = tmp_path / "model.pkl"
    model.save(path)
    restored = ChurnModel.load(path, model.config)
    assert restored.score(values, True) == model.score(values, True)
    assert restored.summary() == model.summary()
    assert ChurnModel.load(tmp_path / "absent.pkl", model.config).summary()["labels"] == 0


def test_the_score_is_corrected_for_the_positive_weight() -> None:
    model = trained(2000)
    assert model.positive_weight > 1
    values = _example(random.Random(3), churner=False)
    raw = model.pipeline.predict_proba_one(values)[True]
    corrected = model.score(values).probability
    assert corrected < raw
    assert corrected / (1 - corrected) == pytest.approx(raw / (1 - raw) / model.positive_weight)


def test_the_model_risk_rule_fires_on_the_assessed_score_and_explains() -> None:
    def scorer(values: dict[str, float], explain: bool) -> Score:
        from rules.state import Driver
        risky = values["days_since_login"] > math.log1p(10)
        drivers = (Driver(name="days_since_login", value=values["days_since_login"], contribution=1.2),)
        return Score(0.9 if risky else 0.1, True, drivers if explain else ())

    state, opened = fold([login(day(0)), subscription(day(0.5), 50, action="started")], scorer=scorer)
    quiet = evaluate(state, day(21), scorer=scorer)  # weekly snapshot on day 21: silent 20 days
    (alert,) = [a for a in quiet.alerts if a.rule == RuleName.MODEL_RISK]
    assert alert.risk_score == 0.9 and alert.severity == "high"
    assert "90%" in alert.reasons[0] and "days since the last login" in alert.reasons[1]
    assert quiet.state is not None
    active = apply_event(quiet.state, login(day(22)), day(22), scorer=scorer)
    assert [a.rule for a in active.alerts] == []  # judged weekly, not on every event
    weekly = evaluate(active.state, day(28), scorer=scorer)  # type: ignore[arg-type]
    assert [(a.rule, a.status) for a in weekly.alerts] == [(RuleName.MODEL_RISK, "resolved")]


# --- on simulated data -----------------------------------------------------------


def test_replay_learns_a_known_signal_and_reports_its_numbers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events, truth = simulate(customers=150, days=150, seed=11)
    source = tmp_path / "sim.jsonl"
    write_simulation(source, events, truth)
    scores = tmp_path / "scores.jsonl"
    assert main(["replay", str(source), "--out", str(tmp_path / "alerts.jsonl"), "--scores", str(scores)]) == 0
    summary = json.loads(capsys.readouterr().out)["model"]
    assert summary["labels"] > 2000 and summary["positive_labels"] > 100
    assert summary["roc_auc"] > 0.65, summary
    lines = [json.loads(line) for line in scores.read_text().splitlines()]
    assert {"customer_id", "taken_at", "probability", "label"} == set(lines[0])
    assert sum(1 for line in lines if line["label"] is not None) == summary["labels"]
    assert any(line["label"] is None for line in lines)  # still waiting at the end
