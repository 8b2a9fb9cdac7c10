"""The rows of a warehouse export, read and checked: subscription periods per customer, and actions.

A bad row is counted with its reason and skipped, never fatal; gzip is told
by the file's first bytes, not its name.
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from churnwatch.offline.backtest.external_sort import Action
from churnwatch.offline.backtest.layout import ExportLayout, LayoutError, SubscriptionColumns
from churnwatch.rules.clock_math import DAY

MAX_NAME_CHARS = 128  # the contract's limit on a usage feature name


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
    text = text.strip()
    if len(text) == 19 and text[10] in "T " and text[13] == ":" and text[16] == ":":
        # The common export shape, 2022-01-11T00:00:51, by arithmetic: an
        # export has millions of rows, and the general parse was the
        # import's largest cost after the CSV reader.
        clock = text[11:13] + text[14:16] + text[17:19]
        if clock.isdigit() and clock.isascii():
            hours, minutes, seconds = int(clock[:2]), int(clock[2:4]), int(clock[4:])
            if hours < 24 and minutes < 60 and seconds < 60:
                return _day_start(text[:10]) + hours * 3600 + minutes * 60 + seconds
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


@functools.lru_cache(maxsize=4096)
def _day_start(date: str) -> int:
    return int(datetime.fromisoformat(date).replace(tzinfo=UTC).timestamp())


def _reader(stream: IO[str], layout: ExportLayout, required: Iterable[str], what: str) -> csv.DictReader[str]:
    rows = csv.DictReader(stream, delimiter=layout.delimiter)
    _require(rows.fieldnames or [], required, what)
    return rows


def _require(header: Sequence[str], required: Iterable[str], what: str) -> None:
    missing = [c for c in required if c not in header]
    if missing:
        raise LayoutError(f"{what} has no column {', '.join(map(repr, missing))} (columns: "
                          f"{', '.join(header)}); map yours with a column mapping file")


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
            if parsed is None:
                report.bad_rows[f"subscriptions: {problem}"] += 1
                continue
            customer, start, end, mrr, product, months = parsed
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


# A subscriptions row as read: customer, start, end (seconds), MRR, product, billing months.
_PeriodRow = tuple[str, int, int, float, str, int | None]


def _period_row(row: dict[str, str], columns: SubscriptionColumns,
                has_period: bool) -> tuple[str, None] | tuple[None, _PeriodRow]:
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


def read_actions(path: Path, layout: ExportLayout, report: ImportReport,
                 on_progress: Callable[[int], None] | None = None) -> Iterator[Action]:
    """The event rows as actions, in file order; ``on_progress`` gets bytes read so far (of the file)."""
    columns = layout.events
    with open_text(path) as stream:
        # Rows as lists, not dicts: the events file is the export's largest by far.
        rows = csv.reader(stream, delimiter=layout.delimiter)
        header = next(rows, [])
        _require(header, (columns.customer, columns.time, columns.name), "the events file")
        at_customer, at_time, at_name = (header.index(c) for c in (columns.customer, columns.time, columns.name))
        at_value = header.index(columns.value) if columns.value in header else None
        width = max(at_customer, at_time, at_name, -1 if at_value is None else at_value) + 1
        for n, row in enumerate(row for row in rows if row):  # blank lines are no rows
            report.event_rows += 1
            if on_progress is not None and n % 50_000 == 0:
                on_progress(_position(stream))
            if len(row) < width:
                row = row + [""] * (width - len(row))
            customer = row[at_customer].strip()
            name = row[at_name].strip()
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
                at = parse_time(row[at_time])
            except ValueError:
                report.bad_rows["events: unreadable time"] += 1
                continue
            value = None
            if at_value is not None and (text := row[at_value].strip()):
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
