"""Revenue churn: a downgrade (MRR falls), open until MRR recovers or the window passes."""

from __future__ import annotations

from churnwatch.rules.clock_math import DAY, iso, iso_date
from churnwatch.rules.condition import Condition, Rule
from churnwatch.rules.config import RulesConfig
from churnwatch.rules.state import CustomerState, Downgrade
from churnwatch.rules.wording import counted
from churnwatch.schemas.alert import RuleName, Severity
from churnwatch.schemas.events import SubscriptionEvent


def _recent(state: CustomerState, now: int, config: RulesConfig) -> list[Downgrade]:
    start = now - config.revenue_churn.window_days * DAY
    return [d for d in state.downgrades if d.at > start]


def condition(state: CustomerState, now: int, config: RulesConfig) -> Condition | None:
    rule = config.revenue_churn
    recent = _recent(state, now, config)
    if not recent or state.subscription is None:
        return None
    baseline = recent[0].from_mrr
    current = state.mrr
    if current >= baseline:
        return None
    drop = (baseline - current) / baseline
    plan = state.subscription.plan
    return Condition(
        severity=Severity.HIGH if drop >= rule.high_drop else rule.severity,
        opening_key=recent[0].event_id,
        reasons=(f"MRR fell {drop:.0%} ({baseline:.2f} -> {current:.2f}, now on plan {plan!r})"
                 f" since {iso_date(recent[0].at)}",),
        recommended_action="Schedule a value review: ask what made them downgrade and what would bring them back.",
        risk_score=round(min(0.9, 0.3 + 0.6 * drop), 3),
        evidence={
            "mrr_before": baseline,
            "mrr_now": current,
            "drop_ratio": round(drop, 4),
            "downgrades_in_window": len(recent),
            "plan": plan,
            "first_downgrade_at": iso(recent[0].at),
        },
    )


def next_check(state: CustomerState, now: int, config: RulesConfig) -> int | None:
    recent = _recent(state, now, config)
    return recent[-1].at + config.revenue_churn.window_days * DAY if recent else None


def resolution(state: CustomerState, now: int, config: RulesConfig) -> str:
    if _recent(state, now, config):
        return f"MRR recovered to {state.mrr:.2f}"
    return f"No further downgrade in {counted(config.revenue_churn.window_days, 'day')}"


RULE = Rule(
    fed_by=frozenset({SubscriptionEvent}),
    name=RuleName.REVENUE_CHURN,
    enabled=lambda config: config.revenue_churn.enabled,
    condition=condition,
    next_check=next_check,
    resolution=resolution,
)
