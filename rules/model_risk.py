"""Model risk: the customers the online model ranks riskiest, within a budget, explained.

The model lives in the shell (it learns); the core receives a read-only view
of it (``ModelView``): a score for an observation, and where a stake ranks
among the customers assessed in the last week. The state keeps the
assessment of the customer's last weekly snapshot, and the rule judges that.

The rule speaks only while the model has passed its gate (enough labels, and
an online ROC AUC on its delayed labels above a floor): a model that is
guessing stays quiet. Then, by default, it fires for the customers whose
stake (probability x MRR: the revenue at stake) ranks in the top
``budget_share`` of the week's assessments, because a support team has a
capacity, not a threshold; an open episode lasts while the customer stays
in the top ``clear_share``. ``selection = "threshold"`` fires on the
probability instead.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

from churnwatch.rules.condition import Condition, Rule
from churnwatch.rules.config import ModelConfig, RulesConfig
from churnwatch.rules.features import describe
from churnwatch.rules.labels import churned
from churnwatch.rules.state import CustomerState, Driver, Observation, Risk
from churnwatch.schemas.alert import RuleName, Severity
from churnwatch.schemas.events import UsageEvent


class Score(NamedTuple):
    probability: float
    warm: bool  # learned from enough labels for its scores to be kept and measured
    ready: bool  # passed the gate: may alert
    drivers: tuple[Driver, ...]  # the features that pushed the score up most
    feature_set: str  # the id of the feature set that gave it
    raw: float | None = None  # before calibration


class Rank(NamedTuple):
    share: float  # of the week's assessments, the share with a higher stake
    population: int  # how many were assessed in the week
    budget: float | None = None  # the top share the model's precision supports (model.lift_floor); None: off


class ModelView(Protocol):
    """What the core may ask of the model; asking changes nothing."""

    def score(self, observation: Observation, explain: bool) -> Score: ...

    def rank(self, stake: float, now: int) -> Rank | None: ...

    def covers(self, at: int) -> bool:
        """Whether the model is the version that scores a snapshot taken at ``at``."""


def stake(probability: float, mrr: float, config: ModelConfig) -> float:
    """What the budget ranks: the revenue at stake, or the probability alone."""
    return probability * mrr if config.rank_by == "revenue_at_stake" else probability


def explain(drivers: tuple[Driver, ...]) -> str:
    return "; ".join(f"{describe(d.name)} = {d.value:.2f}" for d in drivers)


def budget_shares(risk: Risk, config: ModelConfig) -> tuple[float, float]:
    """(share that opens an episode, share that keeps one open), per ``budget_per_day`` if set, no deeper than
    the model's precision supports (``risk.budget``, with ``lift_floor``)."""
    opening, keeping = config.budget_share, config.clear_share
    if config.budget_per_day > 0 and risk.population:
        opening = min(1.0, config.budget_per_day * config.snapshot_every_days / risk.population)
        keeping = min(1.0, opening * config.clear_share / config.budget_share)
    if risk.budget is not None and risk.budget < opening:
        keeping, opening = keeping * risk.budget / opening, risk.budget
    return opening, keeping


def condition(state: CustomerState, now: int, config: RulesConfig) -> Condition | None:
    model = config.model
    risk = state.risk
    if risk is None or not risk.ready or churned(state, now, config):
        return None
    is_open = RuleName.MODEL_RISK in state.episodes
    if model.selection == "threshold":
        if risk.assessed < (model.clear_below if is_open else model.threshold):
            return None
        why = f"Churn probability {risk.assessed:.0%} from the online model (threshold {model.threshold:.0%})"
    else:
        opening, keeping = budget_shares(risk, model)
        if risk.rank is None or risk.rank >= (keeping if is_open else opening):
            return None
        why = (f"Among the riskiest {max(risk.rank, 0.001):.1%} of the {risk.population} customers assessed this"
               f" week (alert budget: top {opening:.1%}); churn probability {risk.assessed:.0%}")
    mrr = state.mrr_at(risk.assessed_at)
    return Condition(
        severity=Severity.HIGH if risk.assessed >= model.high_at else Severity.WARNING,
        opening_key=f"model-risk-from:{risk.assessed_at}",
        reasons=(
            why,
            f"Revenue at stake {risk.assessed * mrr:.2f} (probability x MRR {mrr:.2f})",
            f"Pushed up most by: {explain(risk.drivers)}" if risk.drivers else "No single feature dominates",
        ),
        recommended_action="Check in within a week: the model sees the pattern of customers who left.",
        risk_score=round(risk.assessed, 4),
        evidence={
            "probability": round(risk.assessed, 4),
            "mrr": mrr,
            "revenue_at_stake": round(risk.assessed * mrr, 4),
            "rank_share": None if risk.rank is None else round(risk.rank, 4),
            "assessed_customers": risk.population,
            **{f"driver_{n}_{d.name}": round(d.value, 4) for n, d in enumerate(risk.drivers, 1)},
        },
    )


def resolution(state: CustomerState, now: int, config: RulesConfig) -> str:
    risk = state.risk
    if risk is None:
        return "No model assessment"
    if not risk.ready:
        return "The model went quiet: its online ROC AUC fell below the floor"
    if config.model.selection == "threshold" or risk.rank is None:
        return f"Model churn probability fell to {risk.assessed:.0%}"
    return f"No longer among the riskiest customers (top {risk.rank:.1%}, probability {risk.assessed:.0%})"


def _no_check(state: CustomerState, now: int, config: RulesConfig) -> int | None:
    return None  # assessments come with snapshots, which have due times of their own


# Judged with usage (and by the sweep): a customer's other topics may be read
# ahead of their usage, and features at a payment's or ticket's time would
# see the customer's usage as missing.
RULE = Rule(
    fed_by=frozenset({UsageEvent}),
    name=RuleName.MODEL_RISK,
    enabled=lambda config: config.model.enabled,
    condition=condition,
    next_check=_no_check,
    resolution=resolution,
)
