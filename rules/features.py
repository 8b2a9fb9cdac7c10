"""Model features: what the online model sees of a customer, in two pure steps.

1. ``observe(state, now)`` gives an ``Observation``: raw counts per usage name
   (the product's own event names, discovered from the data) over the last 7
   and 28 days and the 28 days before, active days, silence, payments,
   tickets, tenure, MRR. A snapshot keeps this, not the features.
2. ``inputs(observation, feature_set)`` turns it into named numbers for the
   model. The feature set says which names get features of their own (the
   rules file's, then the most frequent, at most ``max_names``); the rest are
   pooled. Per name: counts over 7 and 28 days, scaled up for accounts
   younger than the window; its share of the mix; its trend against the
   previous 28 days; and ratios between the leading names ("X per Y", as in
   "Fighting Churn With Data").

Keeping raw counts in snapshots is what lets the vocabulary move (a new
product feature becomes frequent) without invalidating snapshots that are
still waiting for their label.

Counts and durations are log-scaled (``log1p``): activity is heavy-tailed,
and after standard scaling a raw count of a rare thing swings an online model
from one label to the next. Shares are bounded already.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from churnwatch.rules.clock_math import DAY, day_of
from churnwatch.rules.config import ModelFeaturesConfig
from churnwatch.rules.state import CustomerState, Observation

FEATURE_VERSION = 2
SHORT_DAYS = 7
LONG_DAYS = 28
# Silence is measured at most this far back, so a never-seen login does not
# dwarf every other feature.
MAX_DAYS = 90.0
# An account is in its first month: the churn playbooks' riskiest time.
FIRST_MONTH_DAYS = 31.0
# The trend needs at least this many days of the previous window.
MIN_PREVIOUS_DAYS = 7.0
POOLED = "*other"
ALL = "*all"


@dataclass(frozen=True)
class FeatureSet:
    """Which usage names get features of their own; the rest are pooled.

    ``id`` changes whenever the inputs change meaning, so a snapshot's score
    can be traced to the vocabulary that gave it.
    """

    names: tuple[str, ...] = ()
    ratio_names: int = 0
    id: str = field(init=False)

    def __post_init__(self) -> None:
        digest = hashlib.sha1("\x1f".join((*self.names, str(self.ratio_names))).encode()).hexdigest()[:10]
        object.__setattr__(self, "id", f"v{FEATURE_VERSION}-{digest}")

    @classmethod
    def choose(cls, frequency: Mapping[str, float], config: ModelFeaturesConfig) -> FeatureSet:
        """The named ones first, then the most frequent (ties by name), at most ``max_names``."""
        chosen = list(dict.fromkeys(config.names))[: config.max_names]
        for name, _ in sorted(frequency.items(), key=lambda item: (-item[1], item[0])):
            if len(chosen) >= config.max_names:
                break
            if name not in chosen:
                chosen.append(name)
        return cls(tuple(chosen), config.ratio_names)

    def ratio_pairs(self) -> Iterable[tuple[str, str]]:
        leading = self.names[: self.ratio_names]
        return ((a, b) for i, a in enumerate(leading) for b in leading[i + 1:])


def observe(state: CustomerState, now: int) -> Observation:
    today = day_of(now)
    counts: dict[str, list[int]] = {}
    active_7 = active_28 = 0
    for day, names in state.activity.items():
        age = today - day
        if age < 0 or age >= 2 * LONG_DAYS:
            continue
        if age < LONG_DAYS:
            active_28 += 1
            active_7 += age < SHORT_DAYS
        slot = 2 if age >= LONG_DAYS else 1
        for name, quantity in names.items():
            row = counts.setdefault(name, [0, 0, 0])
            row[slot] += quantity
            if age < SHORT_DAYS:
                row[0] += quantity
    month_ago = now - 30 * DAY
    two_weeks_ago = now - 14 * DAY
    sentiments = [s.value for s in state.sentiments if two_weeks_ago < s.at <= now]
    paid_until = state.last_payment_success_at
    # Only what was known at ``now``: a worker may have read a customer's subscription ahead of their usage.
    started = state.started_at if state.started_at is not None and state.started_at <= now else state.first_seen_at
    first_usage = state.first_activity_at if state.first_activity_at is not None else now
    return Observation(
        counts={name: (c[0], c[1], c[2]) for name, c in sorted(counts.items())},
        active_days_7=active_7,
        active_days_28=active_28,
        age_days=round(max(0.0, (now - first_usage) / DAY), 3),
        tenure_days=round(max(0.0, (now - started) / DAY), 3),
        days_since_login=_days_since(state.last_login_at, now),
        days_since_activity=_days_since(state.last_activity_at, now),
        failures_30d=sum(1 for f in state.failures if month_ago < f.at <= now),
        unpaid_failures=sum(1 for f in state.failures if f.at <= now and (paid_until is None or f.at > paid_until)),
        tickets_14d=sum(1 for t in state.tickets_opened if two_weeks_ago < t.at <= now),
        sentiment_14d=round(sum(sentiments) / len(sentiments), 4) if sentiments else None,
        mrr=state.mrr_at(now),
        downgrades_30d=sum(1 for d in state.downgrades if month_ago < d.at <= now),
    )


def _days_since(moment: int | None, now: int) -> float | None:
    return None if moment is None else round(min(MAX_DAYS, max(0.0, (now - moment) / DAY)), 3)


def inputs(observation: Observation, feature_set: FeatureSet) -> dict[str, float]:
    """The model's inputs: named numbers, the same names for every customer of this feature set."""
    log = math.log1p
    age = observation.age_days
    # Accounts younger than a window had fewer days to act in it: counts are
    # scaled to the whole window (the book's treatment of new accounts).
    short_scale = SHORT_DAYS / min(SHORT_DAYS, max(age, 1.0))
    long_scale = LONG_DAYS / min(LONG_DAYS, max(age, 1.0))
    covered_before = min(LONG_DAYS, max(0.0, age - LONG_DAYS))
    before_scale = LONG_DAYS / covered_before if covered_before >= MIN_PREVIOUS_DAYS else None
    own = set(feature_set.names)
    totals = [0, 0, 0]
    pooled = [0, 0, 0]
    for name, row in observation.counts.items():
        for i in range(3):
            totals[i] += row[i]
            if name not in own:
                pooled[i] += row[i]
    values: dict[str, float] = {}

    def per_name(label: str, row: tuple[int, int, int] | list[int]) -> None:
        recent, month, before = row
        values[f"7d:{label}"] = log(recent * short_scale)
        values[f"28d:{label}"] = log(month * long_scale)
        if label != ALL:
            values[f"share:{label}"] = month / totals[1] if totals[1] else 0.0
        values[f"trend:{label}"] = (
            log(month * long_scale) - log(before * before_scale) if before_scale is not None else 0.0)

    for name in feature_set.names:
        per_name(name, observation.counts.get(name, (0, 0, 0)))
    per_name(POOLED, pooled)
    per_name(ALL, totals)
    for a, b in feature_set.ratio_pairs():
        month_a = observation.counts.get(a, (0, 0, 0))[1]
        month_b = observation.counts.get(b, (0, 0, 0))[1]
        values[f"per:{a}/{b}"] = log(month_a / (month_b + 1))
    values.update({
        "active_days_7d": min(1.0, observation.active_days_7 * short_scale / SHORT_DAYS),
        "active_days_28d": min(1.0, observation.active_days_28 * long_scale / LONG_DAYS),
        "days_since_login": log(MAX_DAYS if observation.days_since_login is None else observation.days_since_login),
        "days_since_activity": log(
            MAX_DAYS if observation.days_since_activity is None else observation.days_since_activity),
        "tenure_days": log(observation.tenure_days),
        "first_month": 1.0 if observation.tenure_days < FIRST_MONTH_DAYS else 0.0,
        "failures_30d": log(observation.failures_30d),
        "unpaid_failures": log(observation.unpaid_failures),
        "tickets_14d": log(observation.tickets_14d),
        "sentiment_14d": observation.sentiment_14d or 0.0,
        "log_mrr": log(observation.mrr),
        "downgrades_30d": log(observation.downgrades_30d),
    })
    return values


_FIXED_WORDS: dict[str, str] = {
    "active_days_7d": "share of active days in the last 7",
    "active_days_28d": "share of active days in the last 28",
    "days_since_login": "days since the last login (log)",
    "days_since_activity": "days since the last activity (log)",
    "tenure_days": "days as a customer (log)",
    "first_month": "in the first month as a customer",
    "failures_30d": "failed payments in 30 days (log)",
    "unpaid_failures": "failed payments not yet paid (log)",
    "tickets_14d": "support tickets in 14 days (log)",
    "sentiment_14d": "ticket sentiment over 14 days",
    "log_mrr": "MRR (log)",
    "downgrades_30d": "downgrades in 30 days (log)",
}


def display_name(name: str) -> str:
    """A usage name as people say it: ``feature_use:like`` is ``like``."""
    if name == POOLED:
        return "other activity"
    if name == ALL:
        return "all activity"
    return name.removeprefix("feature_use:")


def describe(feature: str) -> str:
    """A feature in words, for the reasons of a model_risk alert and the lookup."""
    if feature in _FIXED_WORDS:
        return _FIXED_WORDS[feature]
    kind, _, name = feature.partition(":")
    if kind == "per":
        a, _, b = name.partition("/")
        return f"{display_name(a)} per {display_name(b)} over 28 days (log)"
    words = {
        "7d": "{} in the last 7 days (log)",
        "28d": "{} in the last 28 days (log)",
        "share": "share of {} in the last 28 days",
        "trend": "trend of {} against the 28 days before (log ratio)",
    }
    return words[kind].format(display_name(name)) if kind in words else feature
