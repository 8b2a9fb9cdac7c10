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

Events are streamed: rows are read once, sorted in bounded chunks on disk
and merged, so memory follows the chunk size and the customers, not the
file. Subscription periods (a row per customer and month) are held in
memory. A bad row is counted with its reason and skipped, never fatal.
"""

from __future__ import annotations

import csv
import gzip
import heapq
import io
import math
import pickle
import tempfile
import tomllib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from churnwatch.rules.clock_math import DAY
from churnwatch.schemas.events import Event, SubscriptionEvent, UsageEvent
from churnwatch.offline.simulator import Truth

MAX_NAME_CHARS = 128  # the contract's limit on a usage feature name
SORT_CHUNK = 250_000  # actions sorted in memory at a time
PICKLE_BATCH = 2_000


class _Columns(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EventColumns(_Columns):
    customer: str = "account_id"
    time: str = "event_time"
    name: str = "event_type"
    value: str = "value"  # optional in the file


class SubscriptionColumns(_Columns):
    customer: str = "account_id"
    product: str = "product"
    start: str = "start_date"
    end: str = "end_date"
    mrr: str = "mrr"
    billing_period_months: str = "bill_period_months"  # optional in the file


class ExportLayout(_Columns):
    """How an export's columns map onto churnwatch; defaults are ChurnSim's (the book's simulator)."""

    events: EventColumns = EventColumns()
    subscriptions: SubscriptionColumns = SubscriptionColumns()
    # Products that are add-ons, not plans: they count in MRR, not in the plan's name.
    add_ons: tuple[str, ...] = ()
    usage_kind: Annotated[str, Field(pattern="^(purchase|feature_use|session|api_call|other)$")] = "feature_use"
    login_per_active_day: bool = True
    # A subscription that restarts more than this many days after it ended was cancelled in between.
    gap_days: Annotated[int, Field(ge=0)] = 7
    delimiter: Annotated[str, Field(min_length=1, max_length=1)] = ","


class LayoutError(ValueError):
    pass


def load_layout(path: Path | None) -> ExportLayout:
    """The column mapping file (TOML), or the defaults; errors name the file and the key."""
    if path is None:
        return ExportLayout()
    try:
        return ExportLayout.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise LayoutError(f"cannot read column mapping {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise LayoutError(f"column mapping {path} is not valid TOML: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                             for e in exc.errors(include_url=False))
        raise LayoutError(f"column mapping {path} is invalid: {problems}") from exc


@dataclass
class ImportReport:
    """What the import read, made and skipped."""

    event_rows: int = 0
    subscription_rows: int = 0
    bad_rows: Counter[str] = field(default_factory=Counter)  # "file: reason" -> rows
    dropped_after_end: int = 0
    events: Counter[str] = field(default_factory=Counter)  # produced, by kind
    customers: int = 0
    churned: int = 0
    first_event_at: datetime | None = None
    end: datetime | None = None


@dataclass(frozen=True, slots=True)
class Period:
    start: int  # seconds since the epoch
    end: int
    mrr: float
    plan: str
    billing_period_months: int


GZIP_MAGIC = b"\x1f\x8b"


def open_text(path: Path) -> IO[str]:
    """A text stream of the file, gunzipped when it is gzip (by its magic bytes, not its name)."""
    raw = path.open("rb")
    if raw.peek(2)[:2] == GZIP_MAGIC:
        return io.TextIOWrapper(gzip.GzipFile(fileobj=raw), encoding="utf-8", newline="")
    return io.TextIOWrapper(raw, encoding="utf-8", newline="")


def parse_time(text: str) -> int:
    """Seconds since the epoch of an ISO 8601 date or time; a time without an offset is UTC."""
    moment = datetime.fromisoformat(text.strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def _reader(stream: IO[str], layout: ExportLayout, required: Iterable[str], what: str) -> csv.DictReader[str]:
    rows = csv.DictReader(stream, delimiter=layout.delimiter)
    missing = [c for c in required if c not in (rows.fieldnames or [])]
    if missing:
        raise LayoutError(f"{what} has no column {', '.join(map(repr, missing))} (columns: "
                          f"{', '.join(rows.fieldnames or [])}); map yours with a column mapping file")
    return rows


def read_periods(path: Path, layout: ExportLayout, report: ImportReport) -> dict[str, list[Period]]:
    """Each customer's subscription periods, in order: rows of one start summed into one period."""
    columns = layout.subscriptions
    add_ons = set(layout.add_ons)
    grouped: dict[tuple[str, int], list[tuple[int, float, str, int | None]]] = {}
    with open_text(path) as stream:
        rows = _reader(stream, layout, (columns.customer, columns.product, columns.start, columns.end,
                                        columns.mrr), "the subscriptions file")
        has_period = columns.billing_period_months in (rows.fieldnames or [])
        for row in rows:
            report.subscription_rows += 1
            problem, parsed = _period_row(row, columns, has_period)
            if problem:
                report.bad_rows[f"subscriptions: {problem}"] += 1
                continue
            customer, start, end, mrr, product, months = parsed  # type: ignore[misc]
            grouped.setdefault((customer, start), []).append((end, mrr, product, months))
    periods: dict[str, list[Period]] = {}
    for (customer, start), parts in grouped.items():
        plans = sorted({p for _, _, p, _ in parts if p not in add_ons}) or sorted({p for _, _, p, _ in parts})
        end = max(e for e, _, _, _ in parts)
        given = [m for _, _, p, m in parts if m is not None and p not in add_ons] or \
            [m for _, _, _, m in parts if m is not None]
        months = max(given) if given else max(1, round((end - start) / DAY / 30.44))
        mrr = round(sum(m for _, m, _, _ in parts), 2)
        periods.setdefault(customer, []).append(Period(start, end, mrr, "+".join(plans), months))
    for customer_periods in periods.values():
        customer_periods.sort(key=lambda p: p.start)
    return periods


def _period_row(row: dict[str, str], columns: SubscriptionColumns, has_period: bool) -> tuple[str | None, object]:
    customer = (row.get(columns.customer) or "").strip()
    if not customer:
        return "no customer id", None
    try:
        start, end = parse_time(row[columns.start]), parse_time(row[columns.end])
    except (ValueError, TypeError):
        return "unreadable start or end date", None
    if end <= start:
        return "period ends before it starts", None
    try:
        mrr = float(row[columns.mrr])
    except (ValueError, TypeError):
        return "unreadable mrr", None
    if not math.isfinite(mrr) or mrr < 0:
        return "negative or infinite mrr", None
    product = (row.get(columns.product) or "").strip() or "subscription"
    months: int | None = None
    if has_period and (row.get(columns.billing_period_months) or "").strip():
        try:
            months = int(float(row[columns.billing_period_months]))
        except ValueError:
            return "unreadable billing period", None
        if not 1 <= months <= 120:
            return "billing period outside 1..120 months", None
    return None, (customer, start, end, mrr, product[:128], months)


# An action as sorted on disk: (time, order in the file, customer, name, value).
Action = tuple[int, int, str, str, float | None]


def read_actions(path: Path, layout: ExportLayout, report: ImportReport,
                 on_progress: Callable[[int], None] | None = None) -> Iterator[Action]:
    """The event rows as actions, in file order; ``on_progress`` gets bytes read so far (of the file)."""
    columns = layout.events
    with open_text(path) as stream:
        rows = _reader(stream, layout, (columns.customer, columns.time, columns.name), "the events file")
        has_value = columns.value in (rows.fieldnames or [])
        for n, row in enumerate(rows):
            report.event_rows += 1
            if on_progress is not None and n % 50_000 == 0:
                on_progress(_position(stream))
            customer = (row.get(columns.customer) or "").strip()
            name = (row.get(columns.name) or "").strip()
            if not customer:
                report.bad_rows["events: no customer id"] += 1
                continue
            if not name:
                report.bad_rows["events: no event name"] += 1
                continue
            if len(name) > MAX_NAME_CHARS:
                report.bad_rows[f"events: event name over {MAX_NAME_CHARS} characters"] += 1
                continue
            try:
                at = parse_time(row[columns.time])
            except (ValueError, TypeError):
                report.bad_rows["events: unreadable time"] += 1
                continue
            value = None
            if has_value and (text := (row.get(columns.value) or "").strip()):
                try:
                    number = float(text)
                except ValueError:
                    report.bad_rows["events: unreadable value"] += 1
                    continue
                value = number if math.isfinite(number) and number >= 0 else None
            yield at, n, customer, name, value
    if on_progress is not None:
        on_progress(path.stat().st_size)


def _position(stream: IO[str]) -> int:
    """Bytes of the underlying file read so far (compressed bytes for a gzip file)."""
    buffer = getattr(stream, "buffer", None)
    inner = getattr(buffer, "fileobj", buffer)
    try:
        return int(inner.tell()) if inner is not None else 0
    except (OSError, ValueError):
        return 0


def time_ordered(actions: Iterable[Action], directory: Path, chunk: int = SORT_CHUNK) -> Iterator[Action]:
    """The actions sorted by (time, file order): chunks sorted in memory, spilled to disk, merged."""
    runs: list[Path] = []
    batch: list[Action] = []
    for action in actions:
        batch.append(action)
        if len(batch) >= chunk:
            runs.append(_spill(sorted(batch), directory, len(runs)))
            batch = []
    if not runs:
        yield from sorted(batch)
        return
    if batch:
        runs.append(_spill(sorted(batch), directory, len(runs)))
    yield from heapq.merge(*(_unspill(run) for run in runs))


def _spill(batch: list[Action], directory: Path, n: int) -> Path:
    path = directory / f"run-{n:05d}.pickle"
    with path.open("wb") as out:
        for i in range(0, len(batch), PICKLE_BATCH):
            pickle.dump(batch[i:i + PICKLE_BATCH], out, protocol=pickle.HIGHEST_PROTOCOL)
    return path


def _unspill(path: Path) -> Iterator[Action]:
    with path.open("rb") as source:
        while True:
            try:
                yield from pickle.load(source)  # our own file, written by _spill
            except EOFError:
                break
    path.unlink()


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
        kind = event.type if event.type != "usage" else ("login" if event.kind == "login" else "action")
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
