"""Model risk: the online model's churn probability above a threshold, explained.

The model lives in the shell (it learns); the core receives it as a scorer, a
function from features to a score, and keeps the score of the customer's
last weekly snapshot in the state.
The rule fires only once the model has learned from enough labels, and
resolves below a lower bound so that a score at the threshold does not flap.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from rules.condition import Condition, Rule
from rules.config import RulesConfig
from rules.features import DESCRIPTIONS
from rules.labels import churned
from rules.state import CustomerState, Driver
from schemas.alert import RuleName, Severity



class Score(NamedTuple):
    probability: float
    ready: bool
    drivers: tuple[Driver, ...]  # the features that pushed the score up most


# features, and whether to explain (drivers cost a sort; only snapshots need them)
Scorer = Callable[[dict[str, float], bool], Score]


def explain(drivers: tuple[Driver, ...]) -> str:
    return "; ".join(f"{DESCRIPTIONS.get(d.name, d.name)} = {d.value:g}" for d in drivers)


def condition(state: CustomerState, now: int, config: RulesConfig) -> Condition | None:
    model = config.model
    risk = state.risk
    if risk is None or not risk.ready or churned(state, now, config):
        return None
    bound = model.clear_below if RuleName.MODEL_RISK in state.episodes else model.threshold
    if risk.assessed < bound:
        return None
    return Condition(
        severity=Severity.HIGH if risk.assessed >= model.high_at else Severity.WARNING,
        opening_key=f"model-risk-from:{risk.assessed_at}",
        reasons=(
            f"Churn probability {risk.assessed:.0%} from the online model",
            f"Pushed up most by: {explain(risk.drivers)}" if risk.drivers else "No single feature dominates",
        ),
        recommended_action="Check in within a week: the model sees the pattern of customers who left.",
        risk_score=round(risk.assessed, 4),
        evidence={
            "probability": round(risk.assessed, 4),
            **{f"driver_{n}_{d.name}": round(d.value, 4) for n, d in enumerate(risk.drivers, 1)},
        },
    )


def resolution(state: CustomerState, now: int, config: RulesConfig) -> str:
    assessed = state.risk.assessed if state.risk else None
    return f"Model churn probability fell to {assessed or 0.0:.0%}"


def _no_check(state: CustomerState, now: int, config: RulesConfig) -> int | None:
    return None  # assessments come with snapshots, which have due times of their own


# Judged with usage (and by the sweep): a customer's other topics may be read
# ahead of their usage, and features at a payment's or ticket's time would
# see the customer's usage as missing.
RULE = Rule(
    fed_by=frozenset({"usage"}),
    name=RuleName.MODEL_RISK,
    enabled=lambda config: config.model.enabled,
    condition=condition,
    next_check=_no_check,
    resolution=resolution,
)
