"""Disengagement: activity down month over month AND no recent login.

Both months are 30-day windows ending at the evaluation time, counted in
whole days. Silence is measured from the last login (or, with none, from the
first event seen). Once open, the episode lasts as long as the silence: a
login ends it; the activity figures only decide when it opens.
"""

from __future__ import annotations

from churnwatch.rules.clock_math import DAY, day_of, iso, iso_date
from churnwatch.rules.condition import Condition, Rule
from churnwatch.rules.config import RulesConfig
from churnwatch.rules.state import CustomerState
from churnwatch.rules.wording import counted
from churnwatch.schemas.alert import RuleName, Severity
from churnwatch.schemas.events import UsageEvent

MONTH_DAYS = 30
# Tolerance for the ratio test, so that exactly min_drop counts as a drop.
EPSILON = 1e-9


def _metric(names: dict[str, int], config: RulesConfig) -> int:
    """A day's activity: all of it, or its purchases (``purchase`` and ``purchase:<feature>``)."""
    if config.disengagement.activity == "purchase":
        return sum(n for name, n in names.items() if name == "purchase" or name.startswith("purchase:"))
    return sum(names.values())


def monthly_activity(state: CustomerState, now: int, config: RulesConfig) -> tuple[int, int]:
    """(last 30 days, the 30 days before) of the configured activity."""
    today = day_of(now)
    current = previous = 0
    for day, kinds in state.activity.items():
        age = today - day
        if 0 <= age < MONTH_DAYS:
            current += _metric(kinds, config)
        elif MONTH_DAYS <= age < 2 * MONTH_DAYS:
            previous += _metric(kinds, config)
    return current, previous


def silent_since(state: CustomerState) -> int:
    return state.last_login_at if state.last_login_at is not None else state.first_seen_at


def condition(state: CustomerState, now: int, config: RulesConfig) -> Condition | None:
    rule = config.disengagement
    since = silent_since(state)
    silence = now - since
    if silence <= rule.silent_days * DAY:
        return None
    current, previous = monthly_activity(state, now, config)
    drop = (previous - current) / previous if previous else 0.0
    if RuleName.DISENGAGEMENT not in state.episodes and not (
        previous >= rule.min_previous_activity and drop + EPSILON >= rule.min_drop
    ):
        return None
    days = silence / DAY
    critical = silence > rule.critical_silent_days * DAY
    what = "Purchases" if rule.activity == "purchase" else "Activity"
    login = f"last login {iso_date(since)}" if state.last_login_at is not None else "never logged in"
    return Condition(
        severity=Severity.CRITICAL if critical else rule.severity,
        opening_key=f"silent-since:{since}",
        reasons=(
            f"{what} down {drop:.0%} month over month ({previous} -> {current})",
            f"No login for {counted(days, 'day')} ({login})",
        ),
        recommended_action=(
            "Contact within 24 h with a dedicated advisor: the customer has been gone a month."
            if critical
            else "Reach out within 48 h: review their usage with them and offer help or training."
        ),
        risk_score=round(min(0.99, 0.5 + 0.3 * max(0.0, drop) + 0.19 * min(1.0, days / rule.critical_silent_days)), 3),
        evidence={
            "activity": rule.activity,
            "activity_last_30d": current,
            "activity_previous_30d": previous,
            "drop_ratio": round(drop, 4),
            "days_since_login": round(days, 2),
            "last_login_at": iso(state.last_login_at),
        },
    )


def next_check(state: CustomerState, now: int, config: RulesConfig) -> int | None:
    rule = config.disengagement
    since = silent_since(state)
    becomes_silent = since + rule.silent_days * DAY + 1
    if now < becomes_silent:
        return becomes_silent
    if RuleName.DISENGAGEMENT in state.episodes:
        becomes_critical = since + rule.critical_silent_days * DAY + 1
        return becomes_critical if now < becomes_critical else None
    # Silent but not (yet) down enough: the monthly windows move once a day,
    # until the last counted activity is older than both months.
    today = day_of(now)
    if any(today - day < 2 * MONTH_DAYS - 1 and _metric(k, config) for day, k in state.activity.items()):
        return (today + 1) * DAY
    return None


def resolution(state: CustomerState, now: int, config: RulesConfig) -> str:
    if state.last_login_at is not None and now - state.last_login_at <= config.disengagement.silent_days * DAY:
        return f"The customer logged in again on {iso_date(state.last_login_at)}"
    return "Disengagement no longer holds"


RULE = Rule(
    fed_by=frozenset({UsageEvent}),
    name=RuleName.DISENGAGEMENT,
    enabled=lambda config: config.disengagement.enabled,
    condition=condition,
    next_check=next_check,
    resolution=resolution,
)
