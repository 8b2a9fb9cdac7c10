"""Alert episodes: one alert when a problem opens, escalations, one when it clears.

A rule that keeps holding says nothing more unless its severity rises: no
repeats, so support queues do not fill with the same customer.
"""

from __future__ import annotations

from collections.abc import Mapping

from churnwatch.rules.alert_ids import alert_id
from churnwatch.rules.clock_math import to_datetime
from churnwatch.rules.condition import Condition
from churnwatch.rules.priority import priority
from churnwatch.rules.state import CustomerState, Episode, evolve
from churnwatch.schemas.alert import Alert, AlertStatus, RuleName

RESOLVED_ACTION = "No action needed: the condition has cleared."


def reconcile(
    state: CustomerState,
    conditions: Mapping[RuleName, Condition | None],
    resolutions: Mapping[RuleName, str],
    triggered_at: int,
) -> tuple[dict[RuleName, Episode], list[Alert]]:
    """The open episodes after this evaluation, and the alerts that say what changed."""
    if not state.episodes and not any(conditions.values()):
        return state.episodes, []  # the usual answer: nothing open, nothing found
    episodes = dict(state.episodes)
    alerts: list[Alert] = []
    for rule, found in conditions.items():
        episode = episodes.get(rule)
        if found is not None and episode is None:
            episode = Episode(
                alert_id=alert_id(state.customer_id, rule, found.opening_key),
                opened_at=triggered_at,
                severity=found.severity,
            )
            episodes[rule] = episode
            alerts.append(_firing(state, rule, episode, found, triggered_at))
        elif found is not None and episode is not None and found.severity.rank > episode.severity.rank:
            episode = evolve(episode, {"severity": found.severity, "sequence": episode.sequence + 1})
            episodes[rule] = episode
            alerts.append(_firing(state, rule, episode, found, triggered_at))
        elif found is None and episode is not None:
            del episodes[rule]
            alerts.append(_resolved(state, rule, episode, resolutions[rule], triggered_at))
    return episodes, alerts


def _firing(
    state: CustomerState, rule: RuleName, episode: Episode, found: Condition, at: int
) -> Alert:
    return Alert(
        alert_id=episode.alert_id,
        customer_id=state.customer_id,
        rule=rule,
        status=AlertStatus.FIRING,
        severity=found.severity,
        priority=priority(found.severity, state.mrr_at(at)),  # as of the moment judged
        risk_score=found.risk_score,
        reasons=list(found.reasons),
        evidence=dict(found.evidence),
        recommended_action=found.recommended_action,
        triggered_at=to_datetime(at),
        episode_started_at=to_datetime(episode.opened_at),
        sequence=episode.sequence,
    )


def _resolved(state: CustomerState, rule: RuleName, episode: Episode, why: str, at: int) -> Alert:
    return Alert(
        alert_id=episode.alert_id,
        customer_id=state.customer_id,
        rule=rule,
        status=AlertStatus.RESOLVED,
        severity=episode.severity,
        priority=priority(episode.severity, state.mrr_at(at)),
        risk_score=0.0,
        reasons=[why],
        evidence={"episode_days": round((at - episode.opened_at) / 86_400, 2)},
        recommended_action=RESOLVED_ACTION,
        triggered_at=to_datetime(at),
        episode_started_at=to_datetime(episode.opened_at),
        sequence=episode.sequence + 1,
    )
