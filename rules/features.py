"""Model features: a pure function of a customer's state at a moment.

The online model sees only these numbers. Activity is read from the daily
buckets, so features are exact to the day. Counts and durations are
log-scaled (``log1p``): activity is heavy-tailed, and after standard scaling a
raw count of a rare thing (a failed payment among thousands of customers who
have none) becomes a huge value that swings an online model from one event to
the next. Shares and sentiment are already bounded.
"""

from __future__ import annotations

import math

from rules.clock_math import DAY, day_of
from rules.state import CustomerState

KINDS = ("login", "purchase", "feature_use", "session", "api_call", "other")

FEATURE_NAMES: tuple[str, ...] = (
    *(f"{kind}_7d" for kind in KINDS),
    *(f"{kind}_30d" for kind in KINDS),
    *(f"{kind}_share_30d" for kind in KINDS),
    "activity_30d",
    "activity_mom_change",
    "active_days_30d",
    "days_since_login",
    "days_since_activity",
    "failures_30d",
    "unpaid_failures",
    "tickets_14d",
    "sentiment_14d",
    "tenure_days",
    "log_mrr",
    "downgrades_30d",
)

DESCRIPTIONS: dict[str, str] = {
    **{f"{kind}_7d": f"{kind.replace('_', ' ')} events in the last 7 days (log)" for kind in KINDS},
    **{f"{kind}_30d": f"{kind.replace('_', ' ')} events in the last 30 days (log)" for kind in KINDS},
    **{f"{kind}_share_30d": f"share of {kind.replace('_', ' ')} in recent activity" for kind in KINDS},
    "activity_30d": "all activity in the last 30 days (log)",
    "activity_mom_change": "month-over-month change in activity",
    "active_days_30d": "share of active days in the last 30",
    "days_since_login": "days since the last login (log)",
    "days_since_activity": "days since the last activity (log)",
    "failures_30d": "failed payments in 30 days (log)",
    "unpaid_failures": "failed payments not yet paid (log)",
    "tickets_14d": "support tickets in 14 days (log)",
    "sentiment_14d": "ticket sentiment over 14 days",
    "tenure_days": "days as a customer (log)",
    "log_mrr": "MRR (log scale)",
    "downgrades_30d": "downgrades in 30 days",
}
# Silence is measured at most this far back, so a never-seen login does not
# dwarf every other feature.
MAX_DAYS = 90.0


def features(state: CustomerState, now: int) -> dict[str, float]:
    today = day_of(now)
    last_7: dict[str, float] = dict.fromkeys(KINDS, 0.0)
    last_30: dict[str, float] = dict.fromkeys(KINDS, 0.0)
    previous_30 = 0.0
    active_days = 0
    for day, kinds in state.activity.items():
        age = today - day
        if 0 <= age < 30:
            active_days += 1
            for kind, quantity in kinds.items():
                last_30[kind] = last_30.get(kind, 0.0) + quantity
                if age < 7:
                    last_7[kind] = last_7.get(kind, 0.0) + quantity
        elif 30 <= age < 60:
            previous_30 += sum(kinds.values())
    total_30 = sum(last_30.values())
    log = math.log1p
    values: dict[str, float] = {}
    for kind in KINDS:
        values[f"{kind}_7d"] = log(last_7[kind])
        values[f"{kind}_30d"] = log(last_30[kind])
        values[f"{kind}_share_30d"] = last_30[kind] / total_30 if total_30 else 0.0
    month_ago = now - 30 * DAY
    two_weeks_ago = now - 14 * DAY
    sentiments = [s.value for s in state.sentiments if two_weeks_ago < s.at <= now]
    paid_until = state.last_payment_success_at
    started = state.started_at if state.started_at is not None else state.first_seen_at
    values.update({
        "activity_30d": log(total_30),
        # In [-1, 1]: -1 is "all gone", 0 unchanged, +1 at least doubled.
        "activity_mom_change": max(-1.0, min(1.0, (total_30 - previous_30) / max(previous_30, 1.0))),
        "active_days_30d": active_days / 30,
        "days_since_login": log(_days_since(state.last_login_at, now)),
        "days_since_activity": log(_days_since(state.last_activity_at, now)),
        "failures_30d": log(sum(1 for f in state.failures if month_ago < f.at <= now)),
        "unpaid_failures": log(sum(1 for f in state.failures
                                   if f.at <= now and (paid_until is None or f.at > paid_until))),
        "tickets_14d": log(sum(1 for t in state.tickets_opened if two_weeks_ago < t.at <= now)),
        "sentiment_14d": sum(sentiments) / len(sentiments) if sentiments else 0.0,
        "tenure_days": log(max(0.0, (now - started) / DAY)),
        "log_mrr": log(state.mrr_at(now)),
        "downgrades_30d": log(sum(1 for d in state.downgrades if month_ago < d.at <= now)),
    })
    return values


def _days_since(moment: int | None, now: int) -> float:
    if moment is None:
        return MAX_DAYS
    return min(MAX_DAYS, max(0.0, (now - moment) / DAY))


def to_vector(values: dict[str, float]) -> tuple[float, ...]:
    """Compact, ordered form for snapshots kept in the state."""
    return tuple(round(values[name], 4) for name in FEATURE_NAMES)


def from_vector(vector: tuple[float, ...]) -> dict[str, float]:
    return dict(zip(FEATURE_NAMES, vector, strict=True))
