"""Warehouse exports into churnwatch events: what ``churnwatch backtest`` replays.

A data warehouse exports product activity as one row per action
(``account_id,event_time,event_type,value``) and billing as one row per
product and subscription period (``account_id,product,start_date,end_date,
mrr,...``). This module turns them into the event contracts, in time order,
as backend services would have published them:

* subscription periods: ``started`` at the first, ``renewed`` at the next,
  ``plan_changed`` (with ``previous_mrr``) when the account's MRR moves,
  ``cancelled`` at the end of the last period if it ended before the data
  did; a gap of more than ``gap_days`` is a cancellation and a new start.
  The MRR of a period is the sum over its rows (plan and add-ons), the plan
  is the period's non-add-on products, the billing period comes from its
  column or the period's length, and ``renews_at`` is the period's end;
* actions: usage events of kind ``usage_kind`` whose ``feature`` is the
  action's name (the model's vocabulary comes from these), with a login at
  the first action of each active day (exports rarely carry logins, and the
  disengagement rule reads them).

The truth comes from the data too: a customer churned when its last period
ended on or before the data's end. The end defaults to the latest period
start in the export (the day billing was exported).

Events are streamed: rows are read once (``export_rows``), sorted in bounded
chunks on disk and merged (``external_sort``), so memory follows the chunk
size and the customers, not the file. Subscription periods (a row per
customer and month) are held in memory. A bad row is counted with its reason
and skipped, never fatal. Which column holds what: ``layout``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from churnwatch.offline.backtest.export_rows import ImportReport, Period, read_actions, read_periods
from churnwatch.offline.backtest.external_sort import time_ordered
from churnwatch.offline.backtest.layout import ExportLayout, LayoutError, load_layout
from churnwatch.offline.simulator import Truth
from churnwatch.rules.clock_math import DAY
from churnwatch.schemas.events import Event, SubscriptionEvent, UsageEvent

__all__ = ["Export", "ExportLayout", "ImportReport", "LayoutError", "find_files", "load_layout", "time_ordered"]


def data_end(periods: dict[str, list[Period]]) -> int | None:
    """The latest period start: billing was exported then, so later ends are not yet known."""
    return max((p.start for customer in periods.values() for p in customer), default=None)


def subscription_events(periods: dict[str, list[Period]], end: int, layout: ExportLayout) -> tuple[
        list[tuple[int, int, SubscriptionEvent]], list[Truth]]:
    """The subscription events (with a sort key: time, then before actions of that second) and the truth."""
    events: list[tuple[int, int, SubscriptionEvent]] = []
    truth: list[Truth] = []
    for customer, customer_periods in periods.items():
        previous: Period | None = None
        for period in customer_periods:
            if period.start >= end:
                break
            if previous is not None and period.start - previous.end > layout.gap_days * DAY:
                events.append(_subscription(customer, previous.end, "cancelled", previous, previous))
                previous = None
            action = ("started" if previous is None
                      else "renewed" if period.mrr == previous.mrr else "plan_changed")
            events.append(_subscription(customer, period.start, action, period, previous))
            previous = period
        # Churned: the last period (of all, also those starting after the end)
        # ended before the data did.
        last = customer_periods[-1]
        churned = previous is not None and last.end < end
        if churned:
            events.append(_subscription(customer, last.end, "cancelled", last, last))
        truth.append(Truth(customer, "", churned, datetime.fromtimestamp(last.end, UTC) if churned else None,
                           datetime.fromtimestamp(customer_periods[0].start, UTC)))
    return events, truth


def _subscription(customer: str, at: int, action: str, period: Period, previous: Period | None) -> tuple[
        int, int, SubscriptionEvent]:
    cancelled = action == "cancelled"
    event = SubscriptionEvent(
        event_id=f"sub-{customer}-{action}-{at}",
        customer_id=customer,
        occurred_at=datetime.fromtimestamp(at, UTC),
        schema_version=2,
        action=action,
        plan=period.plan[:128],
        mrr=0.0 if cancelled else period.mrr,
        previous_mrr=previous.mrr if previous is not None and action != "started" else None,
        renews_at=None if cancelled else datetime.fromtimestamp(period.end, UTC),
        billing_period_months=period.billing_period_months,
        cancel_reason="voluntary" if cancelled else None,
    )
    return at, 0, event


@dataclass
class Export:
    """An export read into events: iterate ``events()`` once, in time order."""

    events_path: Path
    subscriptions_path: Path | None
    layout: ExportLayout = field(default_factory=ExportLayout)
    end: datetime | None = None
    report: ImportReport = field(default_factory=ImportReport)
    truth: list[Truth] = field(default_factory=list)
    _subscriptions: list[tuple[int, int, SubscriptionEvent]] = field(default_factory=list)
    _end: int = 0

    def __post_init__(self) -> None:
        periods = read_periods(self.subscriptions_path, self.layout, self.report) if self.subscriptions_path else {}
        given = int(self.end.timestamp()) if self.end is not None else None
        end = given if given is not None else data_end(periods)
        self._end = end if end is not None else 2**62
        self.report.end = datetime.fromtimestamp(end, UTC) if end is not None else None
        self._subscriptions, self.truth = subscription_events(periods, self._end, self.layout)
        self._subscriptions.sort(key=lambda e: (e[0], e[1], e[2].customer_id))
        self.report.churned = sum(t.churned for t in self.truth)

    def events(self, on_progress: Callable[[int], None] | None = None) -> Iterator[Event]:
        """Every event in time order: subscriptions before the actions of the same second."""
        report = self.report
        with tempfile.TemporaryDirectory(prefix="churnwatch-import-") as tmp:
            actions = time_ordered(read_actions(self.events_path, self.layout, report, on_progress), Path(tmp))
            last_login_day: dict[str, int] = {}
            customers: set[str] = {t.customer_id for t in self.truth}
            subscriptions = iter(self._subscriptions)
            pending = next(subscriptions, None)
            for at, n, customer, name, value in actions:
                if at >= self._end:
                    report.dropped_after_end += 1
                    continue
                while pending is not None and pending[0] <= at:
                    yield self._count(pending[2])
                    pending = next(subscriptions, None)
                if report.first_event_at is None:
                    report.first_event_at = datetime.fromtimestamp(at, UTC)
                moment = datetime.fromtimestamp(at, UTC)
                day = at // DAY
                if customer not in customers:
                    customers.add(customer)
                    self.truth.append(Truth(customer, "", False, None))
                if self.layout.login_per_active_day and last_login_day.get(customer) != day:
                    last_login_day[customer] = day
                    yield self._count(UsageEvent(event_id=f"login-{customer}-{day}", customer_id=customer,
                                                 occurred_at=moment, kind="login"))
                yield self._count(UsageEvent(event_id=f"act-{customer}-{n}", customer_id=customer,
                                             occurred_at=moment, kind=self.layout.usage_kind,
                                             feature=name, amount=value))
            while pending is not None:
                yield self._count(pending[2])
                pending = next(subscriptions, None)
            report.customers = len(customers)

    def _count(self, event: Event) -> Event:
        kind: str = event.type if event.type != "usage" else ("login" if event.kind == "login" else "action")
        if event.type == "subscription":
            kind = f"subscription {event.action.value}"
        self.report.events[kind] += 1
        return event


def find_files(directory: Path) -> tuple[Path, Path | None]:
    """``events.csv[.gz]`` and ``subscriptions.csv[.gz]`` in an export directory."""
    def first(stem: str) -> Path | None:
        for name in (f"{stem}.csv.gz", f"{stem}.csv"):
            if (directory / name).exists():
                return directory / name
        return None

    events = first("events")
    if events is None:
        raise LayoutError(f"no events.csv or events.csv.gz in {directory}")
    return events, first("subscriptions")
