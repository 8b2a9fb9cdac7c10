"""Folding one event into a customer's facts.

Each fact is kept so that the result depends on the set of events, not their
order: maxima for "latest" times, lists kept sorted by (time, event id), the
latest subscription chosen by event time. The one exception is a subscription
change without ``previous_mrr`` that arrives late: its downgrade cannot be
judged (publishers should send ``previous_mrr``).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any, TypeVar

from churnwatch.rules.clock_math import DAY, day_of, to_seconds
from churnwatch.rules.config import RulesConfig
from churnwatch.rules.state import (
    MAX_DOWNGRADES,
    MAX_FAILURES,
    MAX_MRR_CHANGES,
    MAX_SENTIMENTS,
    MAX_TICKETS,
    CustomerState,
    Downgrade,
    Failure,
    MrrChange,
    Sentiment,
    Subscription,
    TicketOpened,
    evolve,
)
from churnwatch.schemas.events import (
    Event,
    PaymentEvent,
    PaymentStatus,
    SubscriptionAction,
    SubscriptionEvent,
    TicketAction,
    TicketEvent,
    UsageEvent,
    UsageKind,
    usage_name,
)

# A day's names beyond ``max_names_per_day`` are pooled under ``kind:~other``:
# a publisher that puts ids into ``feature`` must not grow the state.
POOLED = "~other"


class Outcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    # Older than the kept window (against the customer's newest event): its
    # lasting facts (subscription, start, cancellation, first and last times)
    # are folded in, its day-by-day facts are already out of the window.
    TOO_OLD = "too_old"
    # From before the customer's data was erased on request: refused, nothing changes (rules.engine.erase).
    ERASED = "erased"


# The outcomes that leave the state as it was: nothing to store, nothing to count as applied.
UNCHANGED = frozenset({Outcome.DUPLICATE, Outcome.ERASED})


def new_state(event: Event) -> CustomerState:
    at = to_seconds(event.occurred_at)
    return CustomerState(customer_id=event.customer_id, first_seen_at=at, last_event_at=at)


def fold_event(
    state: CustomerState, event: Event, config: RulesConfig
) -> tuple[CustomerState, Outcome]:
    """The customer's facts after ``event``; the outcome says whether it counted.

    An event older than the window is not dropped: the four topics are read
    at different speeds, so a customer's newest event on one may be months
    ahead of a backlog on another (a worker catching up), and dropping would
    lose what lasts, such as the subscription that started it all. Its
    windowed facts fall out at once, and what it adds to the lasting ones is
    idempotent (minima, maxima, latest by time, lists deduplicated by event
    id), so a repeat of it, which the remembered ids no longer catch,
    changes nothing.
    """
    at = to_seconds(event.occurred_at)
    if event.event_id in state.recent_event_ids:
        return state, Outcome.DUPLICATE
    newest = max(state.last_event_at, at)
    update: dict[str, object] = {
        "first_seen_at": min(state.first_seen_at, at),
        "last_event_at": newest,
        "recent_event_ids": state.recent_event_ids.with_id(event.event_id, at, config.state.remembered_event_ids),
    }
    update.update(FOLDS[type(event)](state, event, at, config))
    folded = evolve(state, update)
    outside = day_of(at) < first_kept_day(folded, config)
    # Usage is judged against the newest usage: the other topics may be read far ahead of it.
    too_old = day_of(at) < first_usage_day(folded, config) if isinstance(event, UsageEvent) else outside
    # Facts only fall out of the window when it moves or the event is older
    # than it; a ticket close may take the closes over their cap.
    if outside or day_of(newest) != day_of(state.last_event_at) or len(folded.tickets_closed_at) > MAX_TICKETS:
        folded = _trim(folded, config)
    return folded, Outcome.TOO_OLD if too_old else Outcome.APPLIED


def _usage(state: CustomerState, event: UsageEvent, at: int, config: RulesConfig) -> dict[str, object]:
    day = day_of(at)
    buckets = dict(state.activity)
    names = dict(buckets.get(day, {}))
    name = usage_name(event.kind.value, event.feature)
    if name not in names and len(names) >= config.state.max_names_per_day:
        name = usage_name(event.kind.value, POOLED)
    names[name] = names.get(name, 0) + event.quantity
    buckets[day] = names
    update: dict[str, object] = {
        "activity": buckets,
        "first_activity_at": min(state.first_activity_at or at, at),
        "last_activity_at": max(state.last_activity_at or at, at),
    }
    if event.kind is UsageKind.LOGIN:
        update["last_login_at"] = max(state.last_login_at or at, at)
    return update


def _payment(state: CustomerState, event: PaymentEvent, at: int, config: RulesConfig) -> dict[str, object]:
    if event.status is PaymentStatus.SUCCEEDED:
        return {"last_payment_success_at": max(state.last_payment_success_at or at, at)}
    failure = Failure(
        at=at, event_id=event.event_id, invoice_id=event.invoice_id,
        reason=str(event.failure_reason), amount=event.amount,
    )
    return {"failures": _insert(state.failures, failure, MAX_FAILURES)}


def _ticket(state: CustomerState, event: TicketEvent, at: int, config: RulesConfig) -> dict[str, object]:
    update: dict[str, object] = {}
    if event.action in (TicketAction.OPENED, TicketAction.REOPENED):
        opened = TicketOpened(
            at=at, event_id=event.event_id, ticket_id=event.ticket_id,
            priority=event.priority.value, category=event.category.value,
        )
        update["tickets_opened"] = _insert(state.tickets_opened, opened, MAX_TICKETS)
    elif event.action is TicketAction.CLOSED:
        closed = dict(state.tickets_closed_at)
        closed[event.ticket_id] = max(closed.get(event.ticket_id, at), at)
        update["tickets_closed_at"] = closed
    if event.sentiment is not None:
        sentiment = Sentiment(at=at, event_id=event.event_id, value=event.sentiment)
        update["sentiments"] = _insert(state.sentiments, sentiment, MAX_SENTIMENTS)
    return update


# Billing periods told by a term's own length in calendar days: monthly, quarterly, half-yearly, yearly.
PERIOD_DAYS: tuple[tuple[int, range], ...] = ((1, range(28, 32)), (3, range(89, 93)), (6, range(181, 185)),
                                              (12, range(365, 367)))


def billing_months(event: SubscriptionEvent) -> int | None:
    """The event's billing period: its own field, else, for a start or a renewal, the term its own dates span.

    Why: ``billing_period_months`` came with schema_version 2, and many
    billing systems send only the next renewal date. A subscription started
    2025-07-01 that renews 2026-07-01 is annual whatever the field says by
    its absence; taken as monthly, ``renewal_at_risk`` watched it 10 days
    ahead instead of 90. A change mid-term (a plan change, a cancellation)
    tells nothing of the period, nor does a span that is no usual term.
    """
    if event.billing_period_months is not None:
        return event.billing_period_months
    if event.renews_at is None or event.action not in (SubscriptionAction.STARTED, SubscriptionAction.RENEWED):
        return None
    days = (event.renews_at.date() - event.occurred_at.date()).days
    return next((months for months, span in PERIOD_DAYS if days in span), None)


def _subscription(
    state: CustomerState, event: SubscriptionEvent, at: int, config: RulesConfig
) -> dict[str, object]:
    months = billing_months(event)
    incoming = Subscription(
        as_of=at, event_id=event.event_id, action=event.action.value, plan=event.plan,
        mrr=event.mrr, renews_at=to_seconds(event.renews_at) if event.renews_at else None,
        cancel_reason=event.cancel_reason.value if event.cancel_reason else None,
        billing_period_months=months,
    )
    current = state.subscription
    is_newest = current is None or (at, event.event_id) > (current.as_of, current.event_id)
    change = MrrChange(at=at, event_id=event.event_id, mrr=event.mrr, action=incoming.action,
                       renews_at=incoming.renews_at, billing_period_months=incoming.billing_period_months)
    update: dict[str, object] = {"mrr_changes": _insert(state.mrr_changes, change, MAX_MRR_CHANGES)}
    if is_newest:
        update["subscription"] = incoming
    if event.action is SubscriptionAction.STARTED:
        update["started_at"] = min(state.started_at or at, at)
    if event.action is SubscriptionAction.CANCELLED:
        update["cancelled_at"] = max(state.cancelled_at or at, at)
    before = event.previous_mrr
    if before is None and is_newest and current is not None:
        before = current.mrr
    if (
        event.action is not SubscriptionAction.CANCELLED
        and before is not None
        and event.mrr < before
        and (before - event.mrr) >= config.revenue_churn.min_drop * before
        and not _commitment(current, event, before, config)
    ):
        downgrade = Downgrade(at=at, event_id=event.event_id, from_mrr=before, to_mrr=event.mrr)
        update["downgrades"] = _insert(state.downgrades, downgrade, MAX_DOWNGRADES)
    return update


# How each event type changes a customer's facts: one function per model of
# ``EVENT_KINDS`` but the erasure request, which replaces the facts rather than
# adding to them (``rules.engine.erase``); a test checks that none is missing.
FOLDS: dict[type, Callable[[CustomerState, Any, int, RulesConfig], dict[str, object]]] = {
    UsageEvent: _usage,
    PaymentEvent: _payment,
    TicketEvent: _ticket,
    SubscriptionEvent: _subscription,
}


def _commitment(current: Subscription | None, event: SubscriptionEvent, before: float, config: RulesConfig) -> bool:
    """A longer billing period at a monthly price lower by at most the usual discount.

    Moving from monthly to annual billing usually lowers the monthly price
    (10-20% is common): the customer committed for longer, which is the
    opposite of churn. A larger fall is still a downgrade (a cheaper tier
    taken with the longer period). Without both billing periods nothing
    can be told, and a fall counts as a downgrade.
    """
    previous = current.billing_period_months if current is not None else None
    longer = billing_months(event)
    if previous is None or longer is None or longer <= previous:
        return False
    return before - event.mrr <= config.revenue_churn.commitment_max_discount * before


_Timed = TypeVar("_Timed", Failure, TicketOpened, Sentiment, Downgrade, MrrChange)


def _insert(items: tuple[_Timed, ...], item: _Timed, cap: int) -> tuple[_Timed, ...]:
    """Sorted by (time, event id), newest ``cap`` kept, each event once: the same for any arrival order."""
    if any(x.event_id == item.event_id for x in items):
        return items
    merged = sorted(items + (item,), key=lambda x: (x.at, x.event_id))
    return tuple(merged[-cap:])


def first_kept_day(state: CustomerState, config: RulesConfig) -> int:
    """The oldest day whose day-by-day facts the state still holds (counted back from its newest event).

    A rule that reads days before it would read a gap, not a quiet customer: on a backlog, a customer's
    payment from weeks ahead may be folded before their older usage, which then lands outside the window.
    """
    return day_of(state.last_event_at) - config.state.keep_days + 1


def first_usage_day(state: CustomerState, config: RulesConfig) -> int:
    """The oldest usage day the state still holds, counted back from its newest usage.

    Not from the newest event: a worker may read a customer's payments or subscription months ahead of
    their usage, and the model's weekly snapshots, taken at their own time, must still see the usage of the
    weeks before.
    """
    newest = state.last_activity_at if state.last_activity_at is not None else state.last_event_at
    return day_of(newest) - config.state.keep_days + 1


def _trim(state: CustomerState, config: RulesConfig) -> CustomerState:
    """Drop what fell out of the kept windows: usage days from the newest usage, the rest from the newest event.

    Only what holds something older than the window is rebuilt: the lists
    and the remembered ids are kept oldest first, so their first item tells.
    """
    first_day = first_kept_day(state, config)
    cutoff = first_day * DAY
    update: dict[str, object] = {}
    first_usage = first_usage_day(state, config)
    if state.activity and min(state.activity) < first_usage:
        update["activity"] = {d: k for d, k in state.activity.items() if d >= first_usage}
    for name in ("failures", "tickets_opened", "sentiments", "downgrades"):
        items = getattr(state, name)
        if items and items[0].at < cutoff:
            update[name] = tuple(x for x in items if x.at >= cutoff)
    ids = state.recent_event_ids
    if (oldest := ids.oldest_time) is not None and oldest < cutoff:
        update["recent_event_ids"] = ids.since(cutoff)
    closed = state.tickets_closed_at
    if closed and (len(closed) > MAX_TICKETS or min(closed.values()) < cutoff):
        closes = sorted((c, t) for t, c in closed.items() if c >= cutoff)
        update["tickets_closed_at"] = {t: c for c, t in closes[-MAX_TICKETS:]}
    return evolve(state, update) if update else state
