"""A small warehouse export, shaped like ChurnSim's, written by tests (the shared datasets stay outside).

Accounts act on named product events every day; each pays monthly. Some go
quiet three weeks before they leave, some move to a cheaper tier (a
downgrade), some to annual billing at 10% off (a commitment), and the least
active leave at a renewal more often than the rest: a learnable signal.
"""

from __future__ import annotations

import csv
import gzip
import io
import random
from datetime import date, datetime, timedelta
from pathlib import Path

START = date(2024, 1, 1)
NAMES = ("like", "post", "message", "adview")


def _add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    return date(day.year + month // 12, month % 12 + 1, min(day.day, 28))


def write_export(directory: Path, accounts: int = 40, days: int = 120, seed: int = 3) -> Path:
    """Write events.csv.gz and subscriptions.csv.gz; returns the directory."""
    rng = random.Random(seed)
    end = START + timedelta(days=days)
    events: list[tuple[str, str, str, str]] = []
    periods: list[tuple[str, str, str, str, str, str]] = []
    for n in range(accounts):
        account = str(n)
        joined = START + timedelta(days=rng.randrange(0, 20))
        level = rng.choice((0.5, 1.0, 2.0, 4.0))
        fate = rng.random()
        quits_early = fate < 0.15  # quiet three weeks before leaving
        downgrades = 0.15 <= fate < 0.25
        commits = 0.25 <= fate < 0.35
        mrr, months, plan = 100.0, 1, "standard_mthly"
        start = joined
        left: date | None = None
        while start < end:
            if start > joined and (downgrades and start > joined + timedelta(days=40)) and plan == "standard_mthly":
                mrr, plan = 40.0, "basic_mthly"
            if start > joined and commits and months == 1:
                mrr, months, plan = 90.0, 12, "standard_annual"
            stop = _add_months(start, months)
            periods.append((account, plan, start.isoformat(), stop.isoformat(), f"{mrr:g}", str(months)))
            churn_chance = 0.6 if quits_early else (0.35 if level <= 0.5 else 0.04)
            if start > joined and rng.random() < churn_chance and months == 1:
                left = stop
                break
            start = stop
        last_day = min(left or end, end)
        quiet_from = last_day - timedelta(days=21) if quits_early and left else last_day
        day = joined
        while day < quiet_from:
            for name, rate in zip(NAMES, (level, level / 2, level, 1.0), strict=True):
                for _ in range(_poisson(rng, rate)):
                    at = datetime.combine(day, datetime.min.time()) + timedelta(seconds=rng.randrange(86_400))
                    events.append((account, at.isoformat(timespec="seconds"), name, ""))
            day += timedelta(days=1)
    events.sort(key=lambda row: (int(row[0]), row[1]))
    directory.mkdir(parents=True, exist_ok=True)
    _write(directory / "events.csv.gz", ("account_id", "event_time", "event_type", "value"), events)
    _write(directory / "subscriptions.csv.gz",
           ("account_id", "product", "start_date", "end_date", "mrr", "bill_period_months"), periods)
    return directory


def _poisson(rng: random.Random, rate: float) -> int:
    count, total = 0, rng.expovariate(1.0)
    while total < rate:
        count += 1
        total += rng.expovariate(1.0)
    return count


def _write(path: Path, header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_bytes(gzip.compress(text.getvalue().encode(), mtime=0))
