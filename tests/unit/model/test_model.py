"""The online model: observations and features, delayed labels, the gate, calibration, the budget."""

from __future__ import annotations

import json
import math
import random
from datetime import datetime
from pathlib import Path

import pytest

from churnwatch.rules import CustomerState, RulesConfig, apply_event, evaluate
from churnwatch.rules.clock_math import DAY, to_seconds
from churnwatch.rules.config import ModelConfig, ModelFeaturesConfig, StateConfig
from churnwatch.rules.features import ALL, POOLED, FeatureSet, describe, inputs, observe
from churnwatch.rules.labels import PENDING, Labelled, label_snapshots, pending_since
from churnwatch.rules.model_risk import Rank, Score, budget_shares
from churnwatch.rules.state import Driver, Observation, Risk, Snapshot
from churnwatch.rules.state_encoding import outline
from churnwatch.schemas.alert import Alert, RuleName
from churnwatch.schemas.events import Event
from churnwatch.cli import main
from churnwatch.model import ChurnModel
from churnwatch.model.calibration import Platt
from churnwatch.model.ranking import MIN_POPULATION, WeeklyRanking
from churnwatch.model.roc import StreamingAUC, auc_lower_bound
from churnwatch.offline.simulator import simulate, write_simulation
from churnwatch.testing.events import day, failed, login, subscription, ticket, usage


def fold(events: list[Event], config: RulesConfig = RulesConfig(), scorer=None) -> tuple[CustomerState, list[Labelled]]:
    state = None
    labelled: list[Labelled] = []
    for event in events:
        transition = apply_event(state, event, event.occurred_at, config, scorer)
        state = transition.state
        labelled += transition.labelled
    assert state is not None
    return state, labelled


# --- observations and features ---------------------------------------------------


def test_an_observation_counts_each_usage_name_over_its_windows() -> None:
    state, _ = fold([
        subscription(day(0), 99.0, action="started"),
        login(day(1)), login(day(40)),
        usage(day(10), "feature_use", 3, feature="like"), usage(day(35), "feature_use", 2, feature="like"),
        usage(day(38), "feature_use", 5, feature="post"), usage(day(39), "purchase", 1),
        failed(day(37)), ticket(day(36), sentiment=-0.5), ticket(day(39), sentiment=0.1),
    ])
    seen = observe(state, to_seconds(day(40.5)))
    assert seen.counts == {
        "feature_use:like": (2, 2, 3), "feature_use:post": (5, 5, 0), "purchase": (1, 1, 0), "login": (1, 1, 1)}
    assert seen.active_days_7 == seen.active_days_28 == 4  # days 35, 38, 39, 40 (days 1 and 10 are before)
    assert seen.age_days == pytest.approx(39.5)
    assert seen.tenure_days == pytest.approx(40.5)
    assert seen.days_since_login == pytest.approx(0.5)
    assert (seen.failures_30d, seen.unpaid_failures, seen.tickets_14d) == (1, 1, 2)
    assert seen.sentiment_14d == pytest.approx(-0.2)
    assert seen.mrr == 99.0


def test_features_scale_young_accounts_and_pool_names_beyond_the_feature_set() -> None:
    young = Observation(counts={"feature_use:like": (7, 14, 0), "feature_use:rare": (1, 2, 0)}, age_days=14)
    values = inputs(young, FeatureSet(("feature_use:like",), ratio_names=2))
    # 14 days old: the 28-day count is doubled, the 7-day count is whole.
    assert values["28d:feature_use:like"] == pytest.approx(math.log1p(28))
    assert values["7d:feature_use:like"] == pytest.approx(math.log1p(7))
    assert values["share:feature_use:like"] == pytest.approx(14 / 16)
    assert values[f"28d:{POOLED}"] == pytest.approx(math.log1p(4))  # "rare" is pooled
    assert values[f"28d:{ALL}"] == pytest.approx(math.log1p(32))
    assert values["trend:feature_use:like"] == 0.0  # no previous window yet
    assert "28d:feature_use:rare" not in values
    older = Observation(counts={"feature_use:like": (7, 20, 10)}, age_days=200)
    assert inputs(older, FeatureSet(("feature_use:like",)))["trend:feature_use:like"] == pytest.approx(
        math.log1p(20) - math.log1p(10))
    assert describe("per:feature_use:like/feature_use:post") == "like per post over 28 days (log)"


def test_the_feature_set_is_bounded_named_names_first_then_the_most_frequent() -> None:
    frequency = {f"feature_use:n{i:02d}": float(100 - i) for i in range(50)}
    config = ModelFeaturesConfig(names=("feature_use:n49",), max_names=5, ratio_names=3)
    chosen = FeatureSet.choose(frequency, config)
    assert chosen.names == ("feature_use:n49", "feature_use:n00", "feature_use:n01", "feature_use:n02",
                            "feature_use:n03")
    assert list(chosen.ratio_pairs()) == [
        ("feature_use:n49", "feature_use:n00"), ("feature_use:n49", "feature_use:n01"),
        ("feature_use:n00", "feature_use:n01")]
    values = inputs(Observation(counts={"feature_use:n30": (1, 1, 1)}, age_days=100), chosen)
    assert len([v for v in values if v.startswith("28d:")]) == 5 + 2  # own names, pooled, all
    assert chosen.id != FeatureSet.choose({**frequency, "feature_use:n40": 1000.0}, config).id


def test_names_per_day_are_capped_in_the_state() -> None:
    config = RulesConfig(state=StateConfig(max_names_per_day=3))
    state, _ = fold([usage(day(1), "feature_use", feature=f"id-{i}") for i in range(10)], config)
    assert state.activity[to_seconds(day(1)) // DAY] == {
        "feature_use:id-0": 1, "feature_use:id-1": 1, "feature_use:id-2": 1, "feature_use:~other": 7}


# --- labels --------------------------------------------------------------------

CONFIG = RulesConfig()


def test_both_labels_wait_for_the_horizon_even_when_a_cancellation_tells_early() -> None:
    events: list[Event] = [subscription(day(0), 50, action="started")]
    events += [login(day(d)) for d in range(0, 45)]
    state, labelled = fold(events)
    taken = [x.taken_at for x in labelled] + [s.taken_at for s in state.snapshots]
    assert taken == [to_seconds(day(d)) for d in range(7, 45, 7)]  # weekly from the first usage
    assert [(x.taken_at, x.label) for x in labelled] == [(to_seconds(day(d)), 0) for d in (7, 14)]

    cancelled = apply_event(state, subscription(day(45), 0, action="cancelled", previous_mrr=50), day(45))
    assert cancelled.state is not None
    assert cancelled.state.next_due_at == to_seconds(day(45))  # the churn, counted on the sweep's clock
    counted = evaluate(cancelled.state, day(46))
    assert counted.labelled == ()  # known, but the horizon has not passed
    assert counted.state is not None and counted.state.next_due_at == to_seconds(day(21 + 30))  # the next to pass
    after = evaluate(cancelled.state, day(42 + 30))
    assert [(x.taken_at, x.label) for x in after.labelled] == [(to_seconds(day(d)), 1) for d in (21, 28, 35, 42)]
    assert all(x.observation is not None and x.feature_set == "unscored" for x in after.labelled)
    assert after.state is not None and after.state.snapshots == ()
    later = evaluate(after.state, day(100))  # no snapshots after churn: nothing left to predict
    assert later.state is not None and later.state.snapshots == () and later.labelled == ()


def test_no_label_comes_from_the_future() -> None:
    state, labelled = fold([subscription(day(0), 50, action="started"), login(day(1)), login(day(8))])
    assert labelled == []
    snapshot = state.snapshots[0]
    pending, none = label_snapshots(state, snapshot.taken_at + 30 * DAY - 1, CONFIG)
    assert none == [] and pending.snapshots == state.snapshots
    cancelled_within = state.model_copy(update={"cancelled_at": snapshot.taken_at + 20 * DAY})
    _, (within,) = label_snapshots(cancelled_within, snapshot.taken_at + 30 * DAY, CONFIG)
    assert within.label == 1
    cancelled_late = state.model_copy(update={"cancelled_at": snapshot.taken_at + 31 * DAY})
    _, (late,) = label_snapshots(cancelled_late, snapshot.taken_at + 31 * DAY, CONFIG)
    assert late.label == 0


def test_inactivity_labels_for_businesses_without_subscriptions() -> None:
    config = RulesConfig(model=ModelConfig(label="inactivity", inactive_days=20))
    _, labelled = fold([usage(day(d)) for d in range(0, 60)], config)
    assert labelled and {x.label for x in labelled} == {0}
    _, labelled = fold([usage(day(d)) for d in range(0, 15)] + [login(day(70))], config)
    assert [x.label for x in labelled if x.taken_at <= to_seconds(day(14))] == [1, 1]


# --- the model's own measures ---------------------------------------------------------


def test_streaming_auc_is_exact_to_its_grid_and_windowed() -> None:
    rng = random.Random(4)
    pairs = [(rng.random() * 0.1 + 0.05 * y, y) for y in (int(rng.random() < 0.1) for _ in range(3000))]

    def exact(sample: list[tuple[float, int]]) -> float:
        pos = [p for p, y in sample if y]
        neg = [p for p, y in sample if not y]
        return sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))

    whole, recent = StreamingAUC(), StreamingAUC(window=500)
    assert whole.get() is None
    for p, y in pairs:
        whole.add(p, y)
        recent.add(p, y)
    assert whole.get() == pytest.approx(exact(pairs), abs=2e-3)
    assert recent.get() == pytest.approx(exact(pairs[-500:]), abs=2e-3)
    assert recent.positives + recent.negatives == 500


def test_platt_scaling_brings_overconfident_scores_to_the_observed_rate() -> None:
    rng = random.Random(5)
    # Raw scores say 50% where 5% churn.
    pairs = [(0.0, int(rng.random() < 0.05)) for _ in range(2000)]
    curve = Platt(prior=1.0)
    assert curve(0.5) == pytest.approx(0.5)
    curve.fit(pairs)
    assert curve(0.5) == pytest.approx(sum(y for _, y in pairs) / len(pairs), abs=0.01)
    held = Platt(prior=2000.0)  # pulled towards no change by as many pairs as it sees
    held.fit(pairs)
    assert sum(y for _, y in pairs) / len(pairs) < held(0.5) < 0.5


def test_the_weekly_ranking_ranks_against_the_last_week_only() -> None:
    ranking = WeeklyRanking(days=7)
    for i in range(MIN_POPULATION - 1):
        ranking.record(i, float(i))
    assert ranking.rank(10.0, MIN_POPULATION) is None  # too few to rank against
    ranking.record(MIN_POPULATION, 1000.0)
    top = ranking.rank(999.0, MIN_POPULATION + 1)
    assert top == Rank(1 / MIN_POPULATION, MIN_POPULATION)
    assert ranking.rank(999.0, 8 * DAY) is None  # a week later, all have expired


def _observation(rng: random.Random, churner: bool) -> Observation:
    likes = max(0, int(rng.gauss(8 if churner else 40, 6)))
    silent = max(0.0, rng.gauss(12 if churner else 2, 3))
    return Observation(counts={"feature_use:like": (likes // 4, likes, likes), "login": (3, 12, 12)},
                       age_days=200, tenure_days=rng.uniform(30, 600), days_since_login=silent,
                       days_since_activity=silent, mrr=50)


def trained(n: int = 3000, seed: int = 1, signal: bool = True, **config: object) -> ChurnModel:
    rng = random.Random(seed)
    model = ChurnModel(ModelConfig(learning_rate=0.01, min_labels=200, **config))
    for i in range(n):
        churner = rng.random() < 0.1
        seen = _observation(rng, churner if signal else rng.random() < 0.1)
        probability = model.score(seen).probability if model.warm else None
        model.learn(Labelled("c", i, seen, model.feature_set.id, probability, int(churner)))
    return model


def test_the_gate_opens_on_a_learnable_signal_and_stays_shut_on_noise() -> None:
    good = trained()
    summary = good.summary()
    assert good.ready and summary["gate_open"] and summary["recent_roc_auc"] > 0.9
    # Calibrated: better than always answering the churn rate.
    assert summary["log_loss"] < summary["log_loss_constant"]
    noise = trained(signal=False)
    assert not noise.ready and noise.warm
    assert noise.summary()["recent_roc_auc"] < 0.65


def test_the_explanation_names_the_feature_that_was_changed() -> None:
    model = trained()
    calm = _observation(random.Random(9), churner=False)
    silent = calm.model_copy(update={"days_since_login": 40.0})
    assert model.score(silent).probability > model.score(calm).probability
    drivers = model.score(silent, True).drivers
    assert "days_since_login" in [d.name for d in drivers]


def test_a_restored_model_scores_exactly_as_before(tmp_path: Path) -> None:
    model = trained(500)
    seen = _observation(random.Random(9), churner=True)
    path = tmp_path / "model.pkl"
    model.save(path)
    restored = ChurnModel.load(path, model.config)
    assert restored.score(seen, True) == model.score(seen, True)
    assert restored.summary() == model.summary()
    assert ChurnModel.load(tmp_path / "absent.pkl", model.config).summary()["labels"] == 0


def test_a_checkpoint_of_another_version_is_moved_aside_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(b"\x80\x04}\x94\x8c\x07version\x94K\x01s.")  # pickle of {"version": 1}
    model = ChurnModel.load(path, ModelConfig())
    assert model.summary()["labels"] == 0
    assert not path.exists() and (tmp_path / "model.pkl.v1").exists()


def test_snapshots_the_model_cannot_read_are_counted_never_raised() -> None:
    model = trained(300)
    before = model.summary()["labels"]
    old = Labelled("c", 1, None, "v1", 0.2, 1)  # a snapshot of an earlier version
    model.learn(old)
    broken = Labelled("c", 2, Observation(), "v2-x", 0.2, 7)  # a label the learner chokes on
    assert model.absorb((), [broken, old]) == 2  # taken, to learn once their day is done
    assert model.advance(40 * DAY) == 1
    summary = model.summary()
    assert summary["labels"] == before
    assert summary["skipped_labels"] == {"feature set v1": 2, "learning error": 1}


def test_an_old_state_with_v1_snapshots_still_loads_and_labels() -> None:
    state, _ = fold([subscription(day(0), 50, action="started"), login(day(1))])
    old = state.model_copy(update={"snapshots": (Snapshot(taken_at=to_seconds(day(2)), values=(0.1, 0.2)),)})
    restored = CustomerState.from_bytes(old.to_bytes())
    _, (label,) = label_snapshots(restored, to_seconds(day(40)), CONFIG)
    assert label.observation is None and label.feature_set == "v1"


# --- the model_risk rule ---------------------------------------------------------


class FixedModel:
    """A model view that scores by silence and ranks against a fixed population."""

    def __init__(self, ready: bool = True, population: int = 100) -> None:
        self.is_ready = ready
        self.population = population

    def score(self, observation: Observation, explain: bool) -> Score:
        risky = (observation.days_since_login or 0) > 10
        drivers = (Driver(name="days_since_login", value=observation.days_since_login or 0, contribution=1.2),)
        return Score(0.4 if risky else 0.01, True, self.is_ready, drivers if explain else (), "v2-test")

    def rank(self, stake: float, now: int) -> Rank | None:
        # Stakes at or above 10 (0.4 x MRR 50 = 20) rank first; the rest at the bottom.
        return Rank(0.0 if stake >= 10 else 0.9, self.population)

    def covers(self, at: int) -> bool:
        return True


def test_model_risk_fires_within_the_budget_and_explains() -> None:
    model = FixedModel()
    state, _ = fold([login(day(0)), subscription(day(0.5), 50, action="started")], scorer=model)
    quiet = evaluate(state, day(21), scorer=model)  # weekly snapshot on day 21: silent for 21 days
    (alert,) = [a for a in quiet.alerts if a.rule == RuleName.MODEL_RISK]
    assert alert.risk_score == 0.4 and alert.severity == "warning"
    assert "riskiest" in alert.reasons[0] and "Revenue at stake 20.00" in alert.reasons[1]
    assert "days since the last login" in alert.reasons[2]
    assert alert.evidence["rank_share"] == 0.0 and alert.evidence["assessed_customers"] == 100
    # Weekly snapshots on days 7, 14 and 21 (the sweep would have taken each on its day); 21 is judged.
    assert [a.stake for a in quiet.assessed] == pytest.approx([0.5, 20.0, 20.0])
    assert quiet.state is not None
    active = apply_event(quiet.state, login(day(22)), day(22), scorer=model)
    assert [a.rule for a in active.alerts] == []  # judged weekly, not on every event
    weekly = evaluate(active.state, day(28), scorer=model)
    assert [(a.rule, a.status) for a in weekly.alerts] == [(RuleName.MODEL_RISK, "resolved")]
    assert "No longer among the riskiest" in weekly.alerts[0].reasons[0]


def test_model_risk_stays_quiet_while_the_gate_is_shut() -> None:
    model = FixedModel(ready=False)
    state, _ = fold([login(day(0)), subscription(day(0.5), 50, action="started")], scorer=model)
    assert evaluate(state, day(21), scorer=model).alerts == ()


def test_a_budget_per_day_is_a_share_of_the_week_assessed() -> None:
    config = RulesConfig(model=ModelConfig(budget_per_day=1, budget_share=0.001, clear_share=0.002))
    model = FixedModel(population=700)  # one a day of 700 a week: a top share of 1%
    state, _ = fold([login(day(0)), subscription(day(0.5), 50, action="started")], config, model)
    (alert,) = evaluate(state, day(21), config, model).alerts
    assert "alert budget: top 1.0%" in alert.reasons[0]


def test_a_budget_following_precision_narrows_what_opens_and_what_keeps_open() -> None:
    config = RulesConfig(model=ModelConfig(budget_share=0.05, clear_share=0.1))
    deep = Risk(assessed=0.4, assessed_at=0, rank=0.03, population=100, budget=0.05)
    shallow = deep.model_copy(update={"budget": 0.02})
    none = deep.model_copy(update={"budget": 0.0})
    assert budget_shares(deep, config.model) == (0.05, 0.1)
    assert budget_shares(shallow, config.model) == pytest.approx((0.02, 0.04))
    assert budget_shares(none, config.model) == (0.0, 0.0)  # a dull ranking: no model_risk episode opens

    class Shallow(FixedModel):
        def rank(self, stake: float, now: int) -> Rank | None:
            return Rank(0.03, self.population, budget=0.02)

    model = Shallow()
    state, _ = fold([login(day(0)), subscription(day(0.5), 50, action="started")], config, model)
    assert evaluate(state, day(21), config, model).alerts == ()  # ranks 3%: inside the budget, not the depth
    assert evaluate(state, day(21), config, FixedModel()).alerts  # without the depth it fires


def test_a_model_with_a_lift_floor_sizes_its_budget_from_its_delayed_labels() -> None:
    sharp = ChurnModel(ModelConfig(lift_floor=3.0, min_labels=0, budget_share=0.05))
    off = ChurnModel(ModelConfig(min_labels=0))
    rng = random.Random(3)
    for n in range(2000):
        churns = rng.random() < 0.05
        observation = Observation(mrr=100.0, days_since_login=30.0 if churns else 1.0)
        probability = 0.9 if churns else rng.random() * 0.5  # scored at snapshot time: a sharp ranking
        for model in (sharp, off):
            model.learn(Labelled(f"c{n}", n, observation, "v2", probability, int(churns)))
    assert sharp.budget == pytest.approx(0.05, abs=0.005)  # as deep as the budget allows
    assert off.budget is None and off.rank(1.0, 0) is None  # off, and too few assessments to rank
    assert sharp.summary()["budget"] == sharp.budget


# --- on simulated data -----------------------------------------------------------


def test_replay_learns_a_known_signal_and_reports_its_numbers(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    events, truth = simulate(customers=150, days=150, seed=11)
    source = tmp_path / "sim.jsonl"
    write_simulation(source, events, truth)
    scores = tmp_path / "scores.jsonl"
    assert main(["replay", str(source), "--out", str(tmp_path / "alerts.jsonl"), "--scores", str(scores)]) == 0
    summary = json.loads(capsys.readouterr().out)["model"]
    assert summary["labels"] > 1500 and summary["positive_labels"] > 100
    assert summary["roc_auc"] > 0.65, summary
    lines = [json.loads(line) for line in scores.read_text().splitlines()]
    assert {"customer_id", "taken_at", "probability", "label"} == set(lines[0])
    assert sum(1 for line in lines if line["label"] is not None) == summary["labels"]
    assert any(line["label"] is None for line in lines)  # still waiting at the end


class VersionedModel(FixedModel):
    """A model view whose versions are made up to ``until`` (the group's clocks decide it, live)."""

    def __init__(self) -> None:
        super().__init__()
        self.until = -1

    def covers(self, at: int) -> bool:
        return self.until >= at


def test_a_snapshot_waits_aside_for_its_model_version_and_is_scored_as_of_its_own_time() -> None:
    """Its wait is no due time: the customer's other rules keep theirs, and the outline knows who waits."""
    model = VersionedModel()
    state, _ = fold([login(day(0)), subscription(day(0.5), 50, action="started")], scorer=model)
    waited = evaluate(state, day(21), scorer=model)
    assert waited.state is not None and waited.assessed == ()
    taken = [s.taken_at for s in waited.state.snapshots if s.feature_set == PENDING]
    assert taken == [to_seconds(day(7)), to_seconds(day(14)), to_seconds(day(21))]
    assert pending_since(waited.state) == to_seconds(day(7))
    assert waited.state.next_due_at is not None and waited.state.next_due_at > to_seconds(day(21))
    assert outline(waited.state.to_bytes()).pending_since == to_seconds(day(7))
    model.until = to_seconds(day(14))  # the versions of days 7 and 14 are made, not yet 21's
    scored = evaluate(waited.state, day(7), scorer=model)  # a tick at the oldest waiting snapshot's time
    assert scored.state is not None
    assert [a.at for a in scored.assessed] == [to_seconds(day(7)), to_seconds(day(14))]
    assert pending_since(scored.state) == to_seconds(day(21))
    assert outline(scored.state.to_bytes()).pending_since == to_seconds(day(21))


def test_a_snapshot_scored_late_alerts_as_of_its_own_time_whether_a_tick_or_an_event_comes_first() -> None:
    """The replay scores a snapshot when it is taken; live it may wait for its week's model version, and the
    customer's next event may come before the tick that scores it: the alerts say the same either way, and a
    cancellation read meanwhile closes the episode as of its own time."""
    from churnwatch.due_index import DueIndex
    from churnwatch.offline.replay import MemoryStates
    from churnwatch.runner import Runner

    class Clock:
        def for_event(self, event_time: datetime) -> datetime:
            return event_time

        def observe(self, source: object, offset: int, event_time: datetime | None) -> None:
            pass

    def alerts(made_at_once: bool, tick_first: bool, cancels: bool) -> list[str]:
        model = VersionedModel()
        runner = Runner(RulesConfig(), model, MemoryStates(), DueIndex(), Clock())
        sent = []
        for event in (login(day(0)), subscription(day(0.5), 50, action="started")):
            sent += runner.event(event, None).alerts
        model.until = to_seconds(day(30)) if made_at_once else -1
        sent += runner.tick("c1", day(14), until=day(14)).alerts  # the snapshots of days 7 and 14
        if cancels:
            sent += runner.event(subscription(day(16), 0, action="cancelled"), None).alerts
        sent += runner.tick("c1", day(21), until=day(21)).alerts
        model.until = to_seconds(day(30))  # the versions are made
        if tick_first:
            sent += runner.tick("c1", day(7), until=day(21)).alerts
        sent += runner.event(login(day(22)), None).alerts
        return [a.model_dump_json() for a in sent if a.rule == RuleName.MODEL_RISK]

    for cancels in (False, True):
        replayed = alerts(made_at_once=True, tick_first=False, cancels=cancels)
        assert Alert.model_validate_json(replayed[0]).triggered_at == day(14)
        assert alerts(made_at_once=False, tick_first=True, cancels=cancels) == replayed
        assert alerts(made_at_once=False, tick_first=False, cancels=cancels) == replayed
    assert [(a.status, a.triggered_at) for a in map(Alert.model_validate_json, replayed)] == [
        ("firing", day(14)), ("resolved", day(16))]


def test_the_auc_bound_is_hanley_and_mcneils_and_narrows_with_more_labels() -> None:
    # AUC 0.75 with 20 positives and 20 negatives: Q1 = 0.6, Q2 = 0.642857, so the variance is
    # (0.1875 + 19 x 0.0375 + 19 x 0.080357) / 400 = 0.0060670 and the SE 0.07789 (one-sided 95%: z = 1.6449).
    assert auc_lower_bound(0.75, 20, 20, 0.95) == pytest.approx(0.75 - 1.6449 * 0.07789, abs=2e-4)
    assert auc_lower_bound(0.75, 20, 20, 0.5) == 0.75  # the estimate itself
    assert auc_lower_bound(0.75, 200, 2000, 0.95) > auc_lower_bound(0.75, 20, 200, 0.95)
    assert auc_lower_bound(0.75, 0, 10, 0.95) == 0.0


def test_a_lucky_window_of_few_churners_does_not_open_the_gate() -> None:
    """Random scores over windows of 20 churners: the point AUC crosses the floor in some, the bound in none."""
    rng = random.Random(5)
    crossed = bound_crossed = 0
    for _ in range(300):
        auc = StreamingAUC()
        for label in [1] * 20 + [0] * 400:
            auc.add(rng.random(), label)
        value = auc.get()
        assert value is not None
        crossed += value >= 0.6
        bound_crossed += auc_lower_bound(value, auc.positives, auc.negatives, 0.95) >= 0.6
    assert crossed >= 10 and bound_crossed == 0


def test_a_workers_own_checkpoint_comes_before_its_starting_model(tmp_path: Path) -> None:
    """After a restart the checkpoint holds what the worker learned live since it started from the file."""
    start, checkpoint = tmp_path / "start.pkl", tmp_path / "worker.pkl"
    trained(500).save(start)
    config = ModelConfig(learning_rate=0.01, min_labels=200)
    started = ChurnModel.load(checkpoint, config, start)
    assert started.labels.total() == 500 and started.config is config
    started.learn(Labelled("c", 10_000, _observation(random.Random(3), True), started.feature_set.id, None, 1))
    started.save(checkpoint)
    assert ChurnModel.load(checkpoint, config, start).labels.total() == 501
    assert ChurnModel.load(tmp_path / "none.pkl", config).labels.total() == 0  # no start: a new model


def test_the_deepest_share_keeps_the_sent_alerts_above_the_floor() -> None:
    from churnwatch.model.ranking import deepest_share, wilson_lower

    rng = random.Random(5)
    base = [(rng.random(), int(rng.random() < 0.05)) for _ in range(4000)]
    assert deepest_share(base, 3.0, 0.1, 10, 0.95) == 0.0  # random scores: no depth has 3x
    sharp = [(2.0 + rng.random(), 1) for _ in range(60)] + base  # 60 sure churners on top, 1.5% of them
    depth = deepest_share(sharp, 3.0, 0.1, 10, 0.95)
    assert 0.015 <= depth < 0.1  # past the sure ones, stopped where the rest would pull it under 3x
    assert deepest_share(sharp, 3.0, 0.01, 10, 0.95) == pytest.approx(0.01, abs=1 / len(sharp))  # the cap
    assert deepest_share(sharp[:5] + base, 3.0, 0.1, 10, 0.95) == 0.0  # fewer hits than the minimum
    assert wilson_lower(0, 10, 0.95) == 0.0 and 0.3 < wilson_lower(10, 20, 0.95) < 0.5


def test_a_checkpoint_from_before_the_budget_followed_precision_still_loads(tmp_path: Path) -> None:
    model = ChurnModel(ModelConfig())
    del model.stakes, model.budget  # as a checkpoint of the previous release holds it
    model.save(tmp_path / "model.pkl")
    loaded = ChurnModel.load(tmp_path / "model.pkl", ModelConfig(lift_floor=4.0))
    assert len(loaded.stakes) == 0 and loaded.budget is None
    assert loaded.stakes.maxlen == ModelConfig().gate_window
