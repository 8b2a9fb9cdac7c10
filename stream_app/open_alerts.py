"""The group's open alerts, as a support lead asks for them: most urgent first, filtered, paged.

Kept from the alerts topic itself, which every worker follows outside the
input group (``churnwatch.worker.alert_follower``): so any worker answers for
the whole group, whatever the number of workers and however the customers
are spread, with what subscribers were sent, word for word. An episode is
open from its first message until a ``resolved`` one; its newest message
(highest ``sequence``) is what is shown. Repeats of a message (at-least-once
delivery) are the same message: taken once.

Like the scoreboard, the board records how far into each partition it has
read and is saved with the model's checkpoint, so a restart reads on from
there rather than from the topic's start (which retention may have cut).
"""

from __future__ import annotations

import textwrap
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from churnwatch.saved_json import load_json, save_json
from churnwatch.schemas.alert import Alert, AlertStatus, RuleName, Severity

VERSION = 1
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_RESOLVED = 100_000
WHY_CHARS = 72  # the first reason, shortened, in a table line


@dataclass(frozen=True)
class AlertQuery:
    """What ``GET /alerts`` asks: every filter optional; ``limit`` and ``offset`` page the ranked list."""

    rule: RuleName | None = None
    min_severity: Severity | None = None
    min_priority: int = 0
    customer_id: str | None = None
    limit: int = DEFAULT_LIMIT
    offset: int = 0

    @classmethod
    def parse(cls, params: Any, limit: int = DEFAULT_LIMIT) -> AlertQuery:
        """From a request's query parameters (``limit`` when none is given); ValueError with a sentence a caller
        can act on."""
        known = {"rule", "severity", "min_priority", "customer_id", "limit", "offset"}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f"unknown parameter {unknown[0]!r}; known: {', '.join(sorted(known))}")

        def one_of(name: str, kind: Any) -> Any:
            value = params.get(name)
            if value is None:
                return None
            try:
                return kind(value)
            except ValueError:
                raise ValueError(f"{name} must be one of {', '.join(v.value for v in kind)}, not {value!r}") from None

        def whole(name: str, default: int, low: int, high: int) -> int:
            value = params.get(name)
            if value is None:
                return default
            if not value.isdigit() or not low <= int(value) <= high:
                raise ValueError(f"{name} must be a whole number from {low} to {high}, not {value!r}")
            return int(value)

        return cls(rule=one_of("rule", RuleName), min_severity=one_of("severity", Severity),
                   min_priority=whole("min_priority", 0, 0, 100), customer_id=params.get("customer_id") or None,
                   limit=whole("limit", limit, 1, MAX_LIMIT), offset=whole("offset", 0, 0, 10**9))

    def admits(self, alert: Alert) -> bool:
        return ((self.rule is None or alert.rule is self.rule)
                and (self.min_severity is None or alert.severity.rank >= self.min_severity.rank)
                and alert.priority >= self.min_priority
                and (self.customer_id is None or alert.customer_id == self.customer_id))


def urgency(alert: Alert) -> tuple[int, int, str, str]:
    """Priority first (severity weighted by the revenue at stake), then severity, then the oldest episode."""
    return -alert.priority, -alert.severity.rank, alert.episode_started_at.isoformat(), alert.alert_id


class OpenAlerts:
    def __init__(self) -> None:
        self.open: dict[str, Alert] = {}  # alert_id -> the episode's newest message
        # The last sequence of episodes lately resolved, so a message of theirs read again later (a repeat after
        # a crash) never reopens them; the oldest are forgotten beyond MAX_RESOLVED.
        self.resolved: dict[str, int] = {}
        self.read: dict[int, int] = {}  # partition -> the next offset to read

    def take(self, partition: int, offset: int, alert: Alert) -> bool:
        """One message of the topic; False when it changed nothing (a repeat, or older than what is known)."""
        self.read[partition] = max(self.read.get(partition, -1), offset + 1)
        known = self.open.get(alert.alert_id)
        if alert.sequence <= (known.sequence if known else self.resolved.get(alert.alert_id, -1)):
            return False
        if alert.status is AlertStatus.RESOLVED:
            self.open.pop(alert.alert_id, None)
            self.resolved[alert.alert_id] = alert.sequence
            if len(self.resolved) > MAX_RESOLVED:
                del self.resolved[next(iter(self.resolved))]
        else:
            self.open[alert.alert_id] = alert
        return True

    def answer(self, query: AlertQuery) -> dict[str, Any]:
        """``GET /alerts``: how many open alerts match, and the page asked for, most urgent first."""
        matching = sorted((a for a in self.open.values() if query.admits(a)), key=urgency)
        page = matching[query.offset:query.offset + query.limit]
        by_rule = Counter(alert.rule.value for alert in matching)
        return {"open": len(matching), "by_rule": dict(sorted(by_rule.items())), "offset": query.offset,
                "limit": query.limit, "messages_read": sum(self.read.values()),
                "alerts": [a.model_dump(mode="json") for a in page]}

    # --- persistence ------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {"version": VERSION, "read": {str(p): n for p, n in sorted(self.read.items())},
                "resolved": self.resolved, "open": [a.model_dump(mode="json") for a in self.open.values()]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OpenAlerts:
        board = cls()
        if data.get("version") != VERSION:
            return board  # read again from the topic's start
        board.read = {int(p): int(n) for p, n in data["read"].items()}
        board.resolved = {str(k): int(v) for k, v in data["resolved"].items()}
        board.open = {a.alert_id: a for a in map(Alert.model_validate, data["open"])}
        return board

    def save(self, path: Path) -> None:
        save_json(path, self.to_json())

    @classmethod
    def load(cls, path: Path) -> OpenAlerts:
        """The file at ``path``; a new board (the topic read from its start) when there is none."""
        data = load_json(path)
        return cls() if data is None else cls.from_json(data)


def format_open_alerts(answer: dict[str, Any]) -> str:
    """``GET /alerts``'s answer as a support lead reads it: one line per alert, most urgent first."""
    rules = ", ".join(f"{rule} {n}" for rule, n in answer["by_rule"].items())
    lines = [f"  {answer['open']} open ({rules or 'none'})" + (f"; the {len(answer['alerts'])} most urgent:"
                                                              if answer["alerts"] else ""),
             f"  {'priority':>8}  {'severity':<9}{'rule':<19}{'customer':<14}{'since':<12}why"]
    for alert in answer["alerts"]:
        why = alert["reasons"][0] if alert["reasons"] else ""
        lines.append(f"  {alert['priority']:>8}  {alert['severity']:<9}{alert['rule']:<19}{alert['customer_id']:<14}"
                     f"{alert['episode_started_at'][:10]:<12}{textwrap.shorten(why, WHY_CHARS, placeholder=' ...')}")
    return "\n".join(lines)
