"""The scorecard: how well alerts foretold churn, against a simulation's truth.

An alert counts once per episode (its opening). It is a hit if the customer
churned within the horizon (30 days) after it; an alert after the customer
had already churned is counted apart (it came too late to help). The base
rate is the chance that an active customer churns in the next 30 days, from
the truth's customer-days at risk; lift is precision over that rate.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from schemas.alert import Alert, AlertStatus
from stream_app.simulator import Truth

ALL_RULES = "any rule"


@dataclass(frozen=True)
class RuleScore:
    rule: str
    alerts: int  # episode openings before churn (or for customers who stayed)
    hits: int  # ... followed by churn within the horizon
    after_churn: int
    churners_caught: int
    churners: int
    median_lead_days: float | None

    @property
    def precision(self) -> float | None:
        return self.hits / self.alerts if self.alerts else None

    @property
    def recall(self) -> float | None:
        return self.churners_caught / self.churners if self.churners else None


@dataclass(frozen=True)
class Scorecard:
    rules: tuple[RuleScore, ...]
    customers: int
    churners: int
    base_rate: float  # P(an active customer churns within the horizon)
    horizon_days: int

    def lift(self, score: RuleScore) -> float | None:
        precision = score.precision
        return precision / self.base_rate if precision is not None and self.base_rate else None


def score_alerts(
    alerts: Iterable[Alert], truth: Iterable[Truth], start: datetime, end: datetime, horizon_days: int = 30
) -> Scorecard:
    horizon = timedelta(days=horizon_days)
    by_customer = {t.customer_id: t for t in truth}
    openings = [a for a in alerts if a.status is AlertStatus.FIRING and a.sequence == 0]
    churners = {t.customer_id for t in by_customer.values() if t.churned}
    at_risk_days = sum(((t.churned_at or end) - start).total_seconds() / 86_400 for t in by_customer.values())
    base_rate = min(1.0, len(churners) / at_risk_days * horizon_days) if at_risk_days > 0 else 0.0
    rules = sorted({a.rule.value for a in openings})
    scores = [_score(rule, [a for a in openings if a.rule.value == rule], by_customer, churners, horizon)
              for rule in rules]
    scores.append(_score(ALL_RULES, openings, by_customer, churners, horizon))
    return Scorecard(tuple(scores), len(by_customer), len(churners), base_rate, horizon_days)


def _score(rule: str, openings: list[Alert], truth: dict[str, Truth], churners: set[str],
           horizon: timedelta) -> RuleScore:
    alerts = hits = after = 0
    caught: set[str] = set()
    leads: list[float] = []
    for alert in openings:
        fact = truth.get(alert.customer_id)
        churned_at = fact.churned_at if fact else None
        if churned_at is not None and alert.triggered_at > churned_at:
            after += 1
            continue
        alerts += 1
        if churned_at is not None and churned_at - alert.triggered_at <= horizon:
            hits += 1
            caught.add(alert.customer_id)
            leads.append((churned_at - alert.triggered_at).total_seconds() / 86_400)
    return RuleScore(rule, alerts, hits, after, len(caught), len(churners),
                     round(statistics.median(leads), 1) if leads else None)


def format_scorecard(card: Scorecard, model_auc: float | None = None) -> str:
    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.0%}"

    lines = [
        f"scorecard: {card.customers} customers, {card.churners} churned; base rate of churn within "
        f"{card.horizon_days} days for an active customer {card.base_rate:.1%}",
        f"  {'rule':<18}{'alerts':>7}{'hits':>6}{'precision':>10}{'lift':>6}{'recall':>8}"
        f"{'lead (d)':>10}{'after churn':>13}",
    ]
    for s in card.rules:
        lift = card.lift(s)
        lines.append(
            f"  {s.rule:<18}{s.alerts:>7}{s.hits:>6}{pct(s.precision):>10}"
            f"{'-' if lift is None else f'{lift:.1f}x':>6}{pct(s.recall):>8}"
            f"{'-' if s.median_lead_days is None else s.median_lead_days:>10}{s.after_churn:>13}"
        )
    if model_auc is not None:
        lines.append(f"  model ROC AUC (online, on its delayed labels): {model_auc:.3f}")
    return "\n".join(lines)
