"""Renewal at risk: a renewal is coming, and the customer shows weak signs.

Customers bound by a term leave at its end; the renewal conversation has to
start well before it, longer before for longer terms (a week or so for a
monthly plan, months for an annual contract: a table in the rules file, by
billing period). From ``renews_at`` minus that lead, a customer with a weak
sign opens the episode: engagement below their own earlier level or below a
floor, an open episode of a listed rule (a failed payment, support
distress, ...), or the model ranking them among the riskiest. The alert names
the renewal date, the revenue at stake and what is weak; it resolves when
the subscription renews (a new ``renews_at``), is cancelled, or the date
passes.

The renewal date comes with subscription events (``renews_at``): live from
the billing system, and from a warehouse export as each period's end.
"""

from __future__ import annotations

from typing import NamedTuple

from churnwatch.rules.clock_math import DAY, day_of, iso, iso_date
from churnwatch.rules.condition import Condition, Rule
from churnwatch.rules.config import RenewalAtRiskConfig, RulesConfig
from churnwatch.rules.fold import first_kept_day
from churnwatch.rules.model_risk import budget_shares
from churnwatch.rules.state import CustomerState
from churnwatch.rules.wording import counted
from churnwatch.schemas.alert import RuleName
from churnwatch.schemas.events import UsageEvent

WINDOW_DAYS = 28


def lead_days(config: RenewalAtRiskConfig, months: int) -> int | None:
    """The lead for a billing period: the entry of the longest period at or below it (None: not watched)."""
    return next((days for period, days in config.leads if period <= months), None)


class Renewal(NamedTuple):
    renews_at: int
    lead: int  # seconds
    months: int
    mrr: float


def renewal(state: CustomerState, now: int, config: RulesConfig) -> Renewal | None:
    """The renewal ahead of a live subscription as it stood at ``now``; None without one.

    As it stood then, not as it is now: a sweep tick that judges an earlier
    moment may come after the worker has read the customer's later events, a
    cancellation or the next renewal among them.
    """
    sub = state.subscription_at(now)
    if sub is None or sub.renews_at is None or sub.action == "cancelled" or state.cancelled_by(now):
        return None
    months = sub.billing_period_months or 1
    lead = lead_days(config.renewal_at_risk, months)
    return None if lead is None else Renewal(sub.renews_at, lead * DAY, months, sub.mrr)


def _activity(state: CustomerState, now: int) -> tuple[int, int, int]:
    """(usage in the last 28 days, in the 28 before, active days in the last 28)."""
    today = day_of(now)
    recent = before = active = 0
    for day, names in state.activity.items():
        age = today - day
        if not 0 <= age < 2 * WINDOW_DAYS:  # outside both windows: not summed
            continue
        total = sum(names.values())
        if age < WINDOW_DAYS:
            recent += total
            active += total > 0
        else:
            before += total
    return recent, before, active


def weak_signs(state: CustomerState, now: int, config: RulesConfig) -> list[str]:
    """What is weak now, in words (empty: nothing)."""
    rule = config.renewal_at_risk
    signs = []
    recent, before, active = _activity(state, now)
    # Days back the state still holds usage for: on a backlog a later event may have pushed the window past
    # some of these days. That can only make the earlier month look smaller (no false drop), but the floor
    # would count missing days as idle ones, so it is judged only on a full window.
    kept = day_of(now) - first_kept_day(state, config) + 1
    drop = (before - recent) / before if before > 0 else 0.0
    if rule.activity_drop > 0 and before > 0 and drop >= rule.activity_drop:
        signs.append(f"usage down {drop:.0%} over the last 28 days against the 28 before "
                     f"({before} -> {recent})")
    # The floor counts from the first usage churnwatch saw: a history whose usage it never received (a backfill
    # of subscriptions only, an export that starts later) is not a customer who stopped using the product.
    # Never using it at all is onboarding_stalled's to say.
    if rule.min_active_share > 0 and state.first_activity_at is not None and kept >= WINDOW_DAYS:
        observed = max(1, min(WINDOW_DAYS, day_of(now) - day_of(state.first_activity_at)))
        if active < rule.min_active_share * observed:
            signs.append(f"active on {active} of the last {observed} days (floor {rule.min_active_share:.0%})")
    for name in rule.open_episodes:
        if name in state.episodes:
            signs.append(f"open {name.value.replace('_', ' ')} episode")
    risk = state.risk
    if rule.model_risk and risk is not None and risk.ready and risk.rank is not None:
        opening, _ = budget_shares(risk, config.model)
        if risk.rank < opening:
            signs.append(f"the model ranks them among the riskiest {max(risk.rank, 0.001):.1%} this week")
    return signs


def condition(state: CustomerState, now: int, config: RulesConfig) -> Condition | None:
    rule = config.renewal_at_risk
    found = renewal(state, now, config)
    if found is None:
        return None
    renews_at, lead, months, mrr = found
    is_open = RuleName.RENEWAL_AT_RISK in state.episodes
    # An open episode lasts through the date itself (its renewal or cancellation event may come then); a new
    # one opens only before it: on the date, a warning would come with the outcome.
    if not renews_at - lead <= now <= renews_at or (now == renews_at and not is_open):
        return None
    signs = weak_signs(state, now, config)
    if not signs and not is_open:
        return None
    days_left = (renews_at - now) / DAY
    term = "monthly" if months == 1 else f"{months}-month"
    return Condition(
        severity=rule.severity.raised() if len(signs) >= 2 else rule.severity,
        opening_key=f"renewal:{renews_at}",
        reasons=(
            f"The {term} subscription renews on {iso_date(renews_at)}, in {counted(days_left, 'day')} "
            f"(MRR {mrr:.2f}; {mrr * months:.2f} for the term)",
            "Weak: " + "; ".join(signs) if signs else "No weak sign any more, but the renewal is still ahead",
        ),
        recommended_action="Have the account owner hold a renewal conversation before the date: review the "
                           "value they get, and address what is weak.",
        risk_score=round(min(0.9, 0.35 + 0.15 * len(signs)), 3),
        evidence={
            "renews_at": iso(renews_at),
            "days_to_renewal": round(days_left, 2),
            "billing_period_months": months,
            "mrr": mrr,
            "revenue_at_stake": round(mrr * months, 2),
            "weak_signs": len(signs),
            **{f"weak_{n}": sign for n, sign in enumerate(signs, 1)},
        },
    )


def next_check(state: CustomerState, now: int, config: RulesConfig) -> int | None:
    """The lead window's opening, then daily (usage ages out of its windows), then the renewal date.

    An open episode outside the window of the renewal in force was ended by an event this rule is not fed
    (a renewal, a cancellation): it is judged again at once, so it closes at that event's time.
    """
    found = renewal(state, now, config)
    is_open = RuleName.RENEWAL_AT_RISK in state.episodes
    if found is None:
        return now if is_open else None
    renews_at, lead, _, _ = found
    if not renews_at - lead <= now <= renews_at:
        return now if is_open else (renews_at - lead if now < renews_at - lead else None)
    return min(renews_at + 1, (day_of(now) + 1) * DAY)


def resolution(state: CustomerState, now: int, config: RulesConfig) -> str:
    sub = state.subscription_at(now)  # (a cancellation closes every episode with its own words, in the engine)
    if sub is not None and sub.renews_at is not None and now < sub.renews_at:
        return f"The subscription renewed, next renewal {iso_date(sub.renews_at)}"
    return "The renewal date passed"


RULE = Rule(
    # Not fed by subscription events: one read ahead of the usage would judge engagement while usage is still
    # queued; a renewal or a cancellation is seen at the next check (daily in the lead window).
    fed_by=frozenset({UsageEvent}),
    name=RuleName.RENEWAL_AT_RISK,
    enabled=lambda config: config.renewal_at_risk.enabled,
    condition=condition,
    next_check=next_check,
    resolution=resolution,
)
