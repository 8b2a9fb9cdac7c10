"""Per-rule live outcomes: of the alerts judged, how many warned a churner in time; of the churners, how many
were warned.

The core judges each alert (``rules.outcomes``); this adds them up, for the
worker's ``GET /rules`` and metrics and for the replay's summary. A worker's
board counts the verdicts of the whole group: they reach it through the
labels topic (``churnwatch.worker.labels``), with how far into that topic it
has counted and what it counted lately (a verdict delivered twice counts
once). It is kept in a small JSON file beside the model checkpoint, so a
restart does not reset what a customer-success lead has been reading for
weeks, and reads the topic on from there.

* precision: hits / all judged alerts (an alert sent after the cancellation
  counts against it: it could not have helped);
* recall: churners warned by the rule within the horizon before they
  cancelled / all churners;
* lead: days from a churner's earliest warning by the rule to the
  cancellation (median of the most recent ``MAX_LEADS``).
"""

from __future__ import annotations

import statistics
from collections import Counter, deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from churnwatch.model.learned import LearnedRecently
from churnwatch.rules.outcomes import Churn, Judged, Verdict
from churnwatch.saved_json import load_json, save_json
from churnwatch.schemas.alert import RuleName

MAX_LEADS = 1000
VERSION = 1


class Scoreboard:
    def __init__(self) -> None:
        self.verdicts: dict[RuleName, Counter[Verdict]] = {}
        self.warned: Counter[RuleName] = Counter()
        self.leads: dict[RuleName, deque[float]] = {}
        self.churners = 0
        self.churners_warned = 0  # by any rule
        self.labels_read = 0  # the next offset of the labels topic to count from
        self.seen = LearnedRecently()  # ids of the verdicts counted lately

    def add(self, judged: Iterable[Judged], churns: Iterable[Churn]) -> None:
        for one in judged:
            self.verdicts.setdefault(one.rule, Counter())[one.verdict] += 1
        for churn in churns:
            self.churners += 1
            self.churners_warned += bool(churn.warned)
            for rule, lead in churn.warned:
                self.warned[rule] += 1
                self.leads.setdefault(rule, deque(maxlen=MAX_LEADS)).append(lead)

    def rule(self, rule: RuleName) -> dict[str, Any]:
        counts = self.verdicts.get(rule, Counter())
        judged = counts.total()
        leads = self.leads.get(rule)
        return {
            "alerts_judged": judged,
            "hits": counts[Verdict.HIT],
            "misses": counts[Verdict.MISS],
            "after_the_fact": counts[Verdict.AFTER_THE_FACT],
            "precision": round(counts[Verdict.HIT] / judged, 4) if judged else None,
            "churners_warned": self.warned[rule],
            "recall": round(self.warned[rule] / self.churners, 4) if self.churners else None,
            "median_lead_days": round(statistics.median(leads), 2) if leads else None,
        }

    def report(self) -> dict[str, Any]:
        """What ``GET /rules`` answers: every rule, and churners overall (None where nothing is known yet)."""
        return {
            "churners": self.churners,
            "churners_warned": self.churners_warned,
            "recall": round(self.churners_warned / self.churners, 4) if self.churners else None,
            "rules": {rule.value: self.rule(rule) for rule in RuleName},
        }

    # --- persistence ------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "churners": self.churners,
            "churners_warned": self.churners_warned,
            "verdicts": {r.value: {v.value: n for v, n in c.items()} for r, c in self.verdicts.items()},
            "warned": {r.value: n for r, n in self.warned.items()},
            "leads": {r.value: list(d) for r, d in self.leads.items()},
            "labels_read": self.labels_read,
            "seen": self.seen.ids(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Scoreboard:
        board = cls()
        if data.get("version") != VERSION:
            return board
        board.churners = int(data["churners"])
        board.churners_warned = int(data["churners_warned"])
        board.verdicts = {RuleName(r): Counter({Verdict(v): int(n) for v, n in c.items()})
                          for r, c in data["verdicts"].items()}
        board.warned = Counter({RuleName(r): int(n) for r, n in data["warned"].items()})
        board.leads = {RuleName(r): deque(map(float, d), maxlen=MAX_LEADS) for r, d in data["leads"].items()}
        board.labels_read = int(data.get("labels_read", 0))
        board.seen = LearnedRecently(ids=[str(i) for i in data.get("seen", [])])
        return board

    def save(self, path: Path) -> None:
        save_json(path, self.to_json())

    @classmethod
    def load(cls, path: Path) -> Scoreboard:
        """The file at ``path``; a new board when there is none (or of another version)."""
        data = load_json(path)
        return cls() if data is None else cls.from_json(data)


def format_report(report: dict[str, Any]) -> str:
    """The report as a table, rules with nothing to say left out."""
    def shown(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    churners, recall = report["churners"], report["recall"]
    lines = [f"  {churners} churners, {report['churners_warned']} warned beforehand by some rule "
             f"(recall {shown(recall, '.1%')})",
             f"  {'rule':<18}{'judged':>7}{'hits':>6}{'misses':>7}{'late':>6}{'precision':>10}"
             f"{'warned':>8}{'recall':>8}{'lead (d)':>9}"]
    for rule, n in report["rules"].items():
        if not (n["alerts_judged"] or n["churners_warned"]):
            continue
        lines.append(f"  {rule:<18}{n['alerts_judged']:>7}{n['hits']:>6}{n['misses']:>7}{n['after_the_fact']:>6}"
                     f"{shown(n['precision'], '.1%'):>10}{n['churners_warned']:>8}{shown(n['recall'], '.1%'):>8}"
                     f"{shown(n['median_lead_days'], '.1f'):>9}")
    return "\n".join(lines)
