"""Support distress: a burst of tickets, an urgent ticket, bad sentiment, or a cancellation request.

All within a sliding window (14 days by default) ending at the evaluation
time. The episode resolves when none of the conditions holds any more, which
happens as tickets close or age out of the window.
"""

from __future__ import annotations

from churnwatch.rules.clock_math import DAY
from churnwatch.rules.condition import Condition, Rule
from churnwatch.rules.config import RulesConfig
from churnwatch.rules.state import CustomerState, TicketOpened
from churnwatch.rules.wording import counted
from churnwatch.schemas.alert import RuleName, Severity
from churnwatch.schemas.events import TicketEvent


def _open(ticket: TicketOpened, state: CustomerState) -> bool:
    return state.tickets_closed_at.get(ticket.ticket_id, -1) < ticket.at


def condition(state: CustomerState, now: int, config: RulesConfig) -> Condition | None:
    rule = config.support_distress
    start = now - rule.window_days * DAY
    opened = [t for t in state.tickets_opened if t.at > start]
    sentiments = [s for s in state.sentiments if s.at > start]
    mean_sentiment = sum(s.value for s in sentiments) / len(sentiments) if sentiments else None
    urgent = [t for t in opened if t.priority == "urgent" and _open(t, state)] if rule.urgent_ticket else []
    cancel = [t for t in opened if t.category == "cancellation_request"] if rule.cancellation_request else []
    reasons: list[str] = []
    triggers: list[str] = []  # event ids that made a condition hold
    if len(opened) >= rule.min_tickets:
        reasons.append(f"{counted(len(opened), 'ticket')} opened in {counted(rule.window_days, 'day')}")
        triggers.append(opened[-1].event_id)
    if urgent:
        reasons.append(f"Urgent ticket {urgent[-1].ticket_id} is open")
        triggers.append(urgent[-1].event_id)
    if mean_sentiment is not None and mean_sentiment <= rule.negative_sentiment:
        reasons.append(f"Mean ticket sentiment {mean_sentiment:+.2f} over {counted(len(sentiments), 'message')}")
        triggers.append(sentiments[-1].event_id)
    if cancel:
        reasons.append(f"Cancellation requested in ticket {cancel[-1].ticket_id}")
        triggers.append(cancel[-1].event_id)
    if not reasons:
        return None
    if cancel:
        severity = Severity.CRITICAL
        action = "Call within 24 h with a dedicated advisor: the customer asked to cancel."
    else:
        severity = Severity.HIGH if urgent else rule.severity
        if len(reasons) > 1:
            severity = severity.raised()
        action = "Have a senior support agent review the open tickets and contact the customer today."
    return Condition(
        severity=severity,
        opening_key=triggers[0],
        reasons=tuple(reasons),
        recommended_action=action,
        risk_score=round(min(0.95, 0.35 + 0.15 * len(reasons) + (0.3 if cancel else 0.0)), 3),
        evidence={
            "tickets_in_window": len(opened),
            "urgent_open": len(urgent),
            "mean_sentiment": None if mean_sentiment is None else round(mean_sentiment, 3),
            "cancellation_requests": len(cancel),
            "window_days": rule.window_days,
        },
    )


def next_check(state: CustomerState, now: int, config: RulesConfig) -> int | None:
    """When the oldest ticket or sentiment in the window leaves it."""
    window = config.support_distress.window_days * DAY
    start = now - window
    times = [t.at for t in state.tickets_opened if t.at > start]
    times += [s.at for s in state.sentiments if s.at > start]
    return min(times) + window if times else None


def resolution(state: CustomerState, now: int, config: RulesConfig) -> str:
    return (
        f"No support distress signal in the last {counted(config.support_distress.window_days, 'day')}"
        " (tickets closed or aged out)"
    )


RULE = Rule(
    fed_by=frozenset({TicketEvent}),
    name=RuleName.SUPPORT_DISTRESS,
    enabled=lambda config: config.support_distress.enabled,
    condition=condition,
    next_check=next_check,
    resolution=resolution,
)
