"""Event time as the core counts it: whole seconds and day numbers, UTC."""

from __future__ import annotations

from datetime import UTC, datetime

DAY = 86_400
HOUR = 3_600


def to_seconds(moment: datetime) -> int:
    return int(moment.timestamp())


def to_datetime(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def day_of(seconds: int) -> int:
    return seconds // DAY


def iso(seconds: int | None) -> str | None:
    return None if seconds is None else to_datetime(seconds).isoformat().replace("+00:00", "Z")


def iso_date(seconds: int) -> str:
    return to_datetime(seconds).date().isoformat()
