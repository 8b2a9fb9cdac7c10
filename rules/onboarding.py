"""Onboarding stalled: a new customer who has not got going in their first weeks.

Customers who never get going leave first (on the simulated social base 105
of 163 churners left at the end of their first month), and the usual rules
cannot see them: there is no earlier level for their activity to fall from.
This rule looks at the onboarding window only, the first ``window_days``
days from the subscription's start, and from day ``check_day`` on judges
activation: the share of the days so far on which the customer was active
(or used one of the product's key features), and optionally how many key
events they have had. A customer below the floor opens the episode; it
resolves when activation catches up, or when the window ends (from then on
the other rules watch them).

Days are whole calendar days (UTC) completed since the start day; today is
counted from tomorrow, so a sweep at midnight does not judge a day that has
just begun. Only customers whose start churnwatch saw (a ``started``
subscription event) are judged: a base that churnwatch meets half-way
through its life has no onboarding to watch.
"""

from __future__ import annotations

import math

from churnwatch.rules.clock_math import DAY, day_of, iso, iso_date
from churnwatch.rules.condition import Condition, Rule
from churnwatch.rules.config import RulesConfig
from churnwatch.rules.fold import first_kept_day
from churnwatch.rules.state import CustomerState
from churnwatch.rules.wording import counted
from churnwatch.schemas.alert import RuleName
from churnwatch.schemas.events import UsageEvent


def _counts(names: dict[str, int], key_events: tuple[str, ...]) -> int:
    """A day's activation events: all usage, or that of the key names (a kind also matches ``kind:feature``)."""
    if not key_events:
        return sum(names.values())
    return sum(n for name, n in names.items() if name in key_events or name.split(":", 1)[0] in key_events)


def progress(state: CustomerState, now: int, config: RulesConfig) -> tuple[int, int, int] | None:
    """(days completed since the start day, days active among them, key events in them); None outside the window."""
    rule = config.onboarding_stalled
    if state.started_at is None or state.cancelled_by(now):
        return None
    start_day = day_of(state.started_at)
    days = day_of(now) - start_day
    if days < rule.check_day or days >= rule.window_days or start_day < first_kept_day(state, config):
        return None  # outside the window, or its first days are no longer held (a backlog read out of order)
    active = events = 0
    for day, names in state.activity.items():
        if start_day <= day < start_day + days:
            counted = _counts(names, rule.key_events)
            active += counted > 0
            events += counted
    return days, active, events


def _stalled(days: int, active: int, events: int, config: RulesConfig) -> bool:
    rule = config.onboarding_stalled
    return active < rule.min_active_share * days or events < rule.min_key_events


def condition(state: CustomerState, now: int, config: RulesConfig) -> Condition | None:
    rule = config.onboarding_stalled
    found = progress(state, now, config)
    if found is None or not _stalled(*found, config):
        return None
    days, active, events = found
    assert state.started_at is not None
    share = active / days
    what = "used " + ", ".join(rule.key_events) if rule.key_events else "active"
    reasons = [f"{what.capitalize()} on {active} of the {counted(days, 'day')} since the subscription started on "
               f"{iso_date(state.started_at)} ({share:.0%}; onboarding floor {rule.min_active_share:.0%})"]
    if events < rule.min_key_events:
        reasons.append(f"{counted(events, 'key event')} so far, fewer than the {rule.min_key_events} expected by now")
    return Condition(
        severity=rule.severity.raised() if active == 0 else rule.severity,
        # The day it stalled too: activation that caught up and stalled again is a new episode, with its own id.
        opening_key=f"onboarding-from:{state.started_at}:day-{days}",
        reasons=tuple(reasons),
        recommended_action="Book an onboarding call or offer a guided setup this week: the customer has not "
                           "got going, and customers who never do leave at their first renewal.",
        risk_score=round(min(0.9, 0.4 + 0.5 * (1 - share / max(rule.min_active_share, 1e-9))), 3),
        evidence={
            "started_at": iso(state.started_at),
            "days_since_start": days,
            "active_days": active,
            "active_share": round(share, 4),
            "key_events": events,
            "window_days": rule.window_days,
            "mrr": state.mrr,
        },
    )


def next_check(state: CustomerState, now: int, config: RulesConfig) -> int | None:
    """The first judgement (day ``check_day``), the day the share would fall under the floor, or the window's end."""
    rule = config.onboarding_stalled
    if state.started_at is None or state.cancelled_by(now):
        return None
    start_day = day_of(state.started_at)
    days = day_of(now) - start_day
    if days >= rule.window_days:
        return None
    window_end = (start_day + rule.window_days) * DAY
    if RuleName.ONBOARDING_STALLED in state.episodes:
        return window_end  # only activity (an event) can close it before then
    if days < rule.check_day:
        return (start_day + rule.check_day) * DAY
    found = progress(state, now, config)
    if found is None:
        return None  # its first days are no longer held: nothing to judge
    _, active, _ = found
    # With no more activity the share falls under the floor once days > active / share: the first such day.
    falls = math.floor(active / rule.min_active_share) + 1 if rule.min_active_share > 0 else rule.window_days
    return min(window_end, (start_day + max(days + 1, falls)) * DAY)


def resolution(state: CustomerState, now: int, config: RulesConfig) -> str:
    rule = config.onboarding_stalled
    if state.started_at is not None and day_of(now) - day_of(state.started_at) >= rule.window_days:
        return f"The {rule.window_days}-day onboarding window ended"
    return "Activation caught up with the onboarding floor"


RULE = Rule(
    fed_by=frozenset({UsageEvent}),
    name=RuleName.ONBOARDING_STALLED,
    enabled=lambda config: config.onboarding_stalled.enabled,
    condition=condition,
    next_check=next_check,
    resolution=resolution,
)
