"""Every alert judged by what the customer did next.

An alert that opens an episode is a warning: the customer will churn within
the horizon. Once the answer is known it is judged:

* **hit**: the customer cancelled within the horizon after the alert (the
  lead is the time between the two);
* **miss**: the horizon passed without a cancellation;
* **after the fact**: the cancellation had already happened when the alert
  was sent (it was read late): the alert could not have helped.

And every churner (a cancellation) is counted once, with the rules that
warned beforehand within the horizon and how early: the recall of churners
warned. A customer who comes back and cancels again is a churner again.

All of it is judged on the sweep's clock only, which waits for every input
topic: a cancellation still queued on one topic is never taken for its
absence, and a churn is counted once nothing from before it can still come,
so that a warning opened later at an earlier time (a tick queued behind the
cancellation) is still credited to it. The customer's due times include the
moments an answer is due (the cancellation, each horizon's end).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from churnwatch.rules.clock_math import DAY, to_seconds
from churnwatch.rules.config import RulesConfig
from churnwatch.rules.state import CustomerState, Warning, evolve
from churnwatch.schemas.alert import Alert, AlertStatus, RuleName

MAX_WARNINGS = 32  # per customer: at most one per episode opened within the horizon


class Verdict(StrEnum):
    HIT = "hit"
    MISS = "miss"
    AFTER_THE_FACT = "after_the_fact"


@dataclass(frozen=True, slots=True)
class Judged:
    """One alert and its verdict; ``lead_days`` for hits."""

    customer_id: str
    rule: RuleName
    alert_id: str
    warned_at: int
    verdict: Verdict
    judged_at: int
    lead_days: float | None = None


@dataclass(frozen=True, slots=True)
class Churn:
    """A churner, and the rules that warned within the horizon before: rule -> lead in days (earliest warning)."""

    customer_id: str
    churned_at: int
    warned: tuple[tuple[RuleName, float], ...]


def remember(state: CustomerState, alerts: list[Alert], config: RulesConfig) -> CustomerState:
    """Keep the alerts that opened an episode, at their time, to be judged later (an escalation is the same
    warning)."""
    if not config.outcomes.enabled or not alerts:
        return state
    opened = [Warning(rule=a.rule, alert_id=a.alert_id, at=to_seconds(a.triggered_at))
              for a in alerts if a.status is AlertStatus.FIRING and a.sequence == 0]
    if not opened:
        return state
    return evolve(state, {"warnings": (*state.warnings, *opened)[-MAX_WARNINGS:]})


def judge(state: CustomerState, now: int, sweep: bool,
          config: RulesConfig) -> tuple[CustomerState, list[Judged], list[Churn]]:
    """The warnings whose answer is known at ``now``, and a churn to count; only on the sweep's clock (``sweep``)."""
    if not (config.outcomes.enabled and sweep):
        return state, [], []
    cancelled = state.cancelled_at
    new_churn = cancelled is not None and cancelled <= now and cancelled != state.churn_counted_at
    if not state.warnings and not new_churn:
        return state, [], []  # the usual answer
    horizon = config.outcomes.horizon_days * DAY
    judged: list[Judged] = []
    waiting: list[Warning] = []
    for warning in state.warnings:
        verdict = _verdict(warning, cancelled, now, horizon)
        if verdict is None:
            waiting.append(warning)
            continue
        lead = round((cancelled - warning.at) / DAY, 2) if verdict is Verdict.HIT and cancelled else None
        judged.append(Judged(state.customer_id, warning.rule, warning.alert_id, warning.at, verdict, now, lead))
    churns: list[Churn] = []
    update: dict[str, object] = {"warnings": tuple(waiting)}
    if new_churn and cancelled is not None:
        earliest: dict[RuleName, float] = {}
        for found in judged:
            if found.verdict is Verdict.HIT and found.lead_days is not None:
                earliest[found.rule] = max(earliest.get(found.rule, 0.0), found.lead_days)
        churns.append(Churn(state.customer_id, cancelled, tuple(sorted(earliest.items()))))
        update["churn_counted_at"] = cancelled
    return evolve(state, update), judged, churns


def _verdict(warning: Warning, cancelled: int | None, now: int, horizon: int) -> Verdict | None:
    if cancelled is not None and cancelled <= now:
        if cancelled <= warning.at:
            return Verdict.AFTER_THE_FACT
        if cancelled <= warning.at + horizon:
            return Verdict.HIT
    if now >= warning.at + horizon:
        return Verdict.MISS
    return None


def next_check(state: CustomerState, config: RulesConfig) -> int | None:
    """A churn not counted yet, else the oldest waiting warning's horizon end (a silent customer's misses too)."""
    if not config.outcomes.enabled:
        return None
    cancelled = state.cancelled_at
    if cancelled is not None and cancelled != state.churn_counted_at:
        return cancelled
    if not state.warnings:
        return None
    return min(w.at for w in state.warnings) + config.outcomes.horizon_days * DAY
