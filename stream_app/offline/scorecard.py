"""The scorecard: how well alerts foretold churn, against known outcomes.

Definitions (the same for the demo, ``replay --truth`` and ``backtest``):

* an *alert* is an episode's opening (a firing alert of sequence 0);
  escalations and resolutions are not new alerts. An alert at or after the
  customer's churn is counted apart ("after churn"): it came too late;
* a customer's alerts of one rule within one horizon (30 days) are one
  *episode* (for "any rule", alerts of all rules);
* *precision* is over the episodes judged: those that started in
  ``[start, end - horizon]``, whose horizon is known. A *hit* is an episode
  followed by the customer's churn within the horizon;
* *recall* is over the customers who churned in ``[start, end)``: the share
  with an episode in the horizon before their churn; *lead* is the median
  days from that first episode to the churn;
* the *base rate* is the precision of a coin: the chance that a random active
  customer (joined, not yet gone) on a random day of the judged period churns
  within the horizon; *lift* is precision over it.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from churnwatch.schemas.alert import Alert, AlertStatus
from churnwatch.offline.simulator import Truth

ALL_RULES = "any rule"


@dataclass(frozen=True)
class RuleScore:
    rule: str
    alerts: int  # openings before churn (or for customers who stayed)
    episodes_judged: int
    hits: int  # judged episodes followed by churn within the horizon
    after_churn: int
    churners_caught: int
    churners: int
    median_lead_days: float | None

    @property
    def precision(self) -> float | None:
        return self.hits / self.episodes_judged if self.episodes_judged else None

    @property
    def recall(self) -> float | None:
        return self.churners_caught / self.churners if self.churners else None


@dataclass(frozen=True)
class Scorecard:
    rules: tuple[RuleScore, ...]
    customers: int
    churners: int
    base_rate: float
    horizon_days: int
    start: datetime
    end: datetime

    def lift(self, score: RuleScore) -> float | None:
        precision = score.precision
        return precision / self.base_rate if precision is not None and self.base_rate else None

    def by_rule(self, rule: str) -> RuleScore | None:
        return next((s for s in self.rules if s.rule == rule), None)


def score_alerts(
    alerts: Iterable[Alert], truth: Iterable[Truth], start: datetime, end: datetime, horizon_days: int = 30
) -> Scorecard:
    horizon = timedelta(days=horizon_days)
    by_customer = {t.customer_id: t for t in truth}
    openings = sorted((a for a in alerts if a.status is AlertStatus.FIRING and a.sequence == 0),
                      key=lambda a: (a.triggered_at, a.customer_id, a.rule.value))
    churners = churn_times(by_customer.values(), start, end)
    rules = sorted({a.rule.value for a in openings})
    scores = [score_openings(rule, [(a.customer_id, a.triggered_at) for a in openings if a.rule.value == rule],
                             by_customer, churners, horizon, start, end)
              for rule in rules]
    scores.append(score_openings(ALL_RULES, [(a.customer_id, a.triggered_at) for a in openings],
                                 by_customer, churners, horizon, start, end))
    return Scorecard(tuple(scores), len(by_customer), len(churners),
                     base_rate(by_customer.values(), start, end, horizon), horizon_days, start, end)


def base_rate(truth: Iterable[Truth], start: datetime, end: datetime, horizon: timedelta) -> float:
    """P(a random active customer on a random judged day churns within the horizon)."""
    facts = [(t.since, t.churned_at) for t in truth]
    seen = hits = 0
    day = start
    while day + horizon <= end:
        for since, churned_at in facts:
            if (since is not None and since > day) or (churned_at is not None and churned_at <= day):
                continue  # not yet a customer, or already gone
            seen += 1
            hits += churned_at is not None and churned_at - day <= horizon
        day += timedelta(days=1)
    return hits / seen if seen else 0.0


def churn_times(truth: Iterable[Truth], start: datetime, end: datetime) -> dict[str, datetime | None]:
    """The customers who churned in ``[start, end)``: recall's denominator."""
    return {t.customer_id: t.churned_at for t in truth
            if t.churned_at is not None and start <= t.churned_at < end}


def score_openings(rule: str, openings: list[tuple[str, datetime]], truth: dict[str, Truth],
                   churners: dict[str, datetime | None], horizon: timedelta, start: datetime,
                   end: datetime) -> RuleScore:
    """Score (customer, time) openings in time order, as defined above."""
    after = 0
    episodes: list[tuple[str, datetime]] = []
    last: dict[str, datetime] = {}
    for customer_id, triggered_at in openings:
        fact = truth.get(customer_id)
        churned_at = fact.churned_at if fact else None
        if churned_at is not None and triggered_at >= churned_at:
            after += 1
            continue
        previous = last.get(customer_id)
        if previous is not None and triggered_at - previous < horizon:
            continue  # the same problem, still within its horizon
        last[customer_id] = triggered_at
        episodes.append((customer_id, triggered_at))
    judged = [(c, t) for c, t in episodes if start <= t and t + horizon <= end]
    hits = 0
    for customer, at in judged:
        fact = truth.get(customer)
        hits += fact is not None and fact.churned_at is not None and fact.churned_at - at <= horizon
    warned: dict[str, datetime] = {}
    for customer, at in episodes:
        churned_at = churners.get(customer)
        if churned_at is not None and churned_at - horizon <= at < churned_at and customer not in warned:
            warned[customer] = at
    leads = [(churned - at).total_seconds() / 86_400 for c, at in warned.items()
             if (churned := churners[c]) is not None]
    return RuleScore(rule, len(openings) - after, len(judged), hits, after, len(warned), len(churners),
                     round(statistics.median(leads), 1) if leads else None)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def rule_rows(card: Scorecard, indent: str = "  ") -> list[str]:
    """The per-rule table (a header, then a row per rule and "any rule"): one layout wherever it is shown."""
    rows = [f"{indent}{'rule':<18}{'alerts':>7}{'judged':>8}{'hits':>6}{'precision':>10}{'lift':>8}{'recall':>8}"
            f"{'lead (d)':>10}{'after churn':>13}"]
    for s in card.rules:
        lift = card.lift(s)
        rows.append(
            f"{indent}{s.rule:<18}{s.alerts:>7}{s.episodes_judged:>8}{s.hits:>6}{_pct(s.precision):>10}"
            f"{'-' if lift is None else f'{lift:.2f}x':>8}{_pct(s.recall):>8}"
            f"{'-' if s.median_lead_days is None else s.median_lead_days:>10}{s.after_churn:>13}"
        )
    return rows


def format_scorecard(card: Scorecard, model_auc: float | None = None) -> str:
    lines = [
        f"scorecard: {card.customers} customers, {card.churners} churned between {card.start:%Y-%m-%d} and "
        f"{card.end:%Y-%m-%d}; a random active customer on a random day churns within {card.horizon_days} "
        f"days {card.base_rate:.1%} of the time",
        *rule_rows(card),
    ]
    if model_auc is not None:
        lines.append(f"  model ROC AUC (online, on its delayed labels): {model_auc:.3f}")
    return "\n".join(lines)
