"""One backtest as a user runs it: a source, a progress bar, the judgement, the files.

Shared by ``churnwatch backtest`` and ``make eval`` (``bench/eval.py``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from churnwatch.rules import RulesConfig
from churnwatch.schemas.events import Event
from churnwatch.model import ChurnModel
from churnwatch.offline.backtest.chart import draw
from churnwatch.offline.backtest.reference import offline_reference
from churnwatch.offline.backtest.run import (
    Backtest,
    BudgetPoint,
    as_json,
    budget_curve,
    jsonl_events,
    lift_by_decile,
    run_backtest,
)
from churnwatch.offline.backtest.warehouse import Export, ExportLayout, ImportReport, LayoutError, find_files
from churnwatch.offline.simulator import Truth, read_truth


@dataclass(frozen=True)
class Source:
    """Where the history comes from: a warehouse export, or an event file and its truth."""

    name: str
    events_file: Path
    subscriptions_file: Path | None = None
    layout: ExportLayout = ExportLayout()
    truth_file: Path | None = None  # set: events_file is a churnwatch event file (JSONL)
    end: datetime | None = None

    @classmethod
    def export(cls, directory: Path | None, events: Path | None = None, subscriptions: Path | None = None,
               layout: ExportLayout = ExportLayout(), end: datetime | None = None) -> Source:
        if directory is not None:
            found_events, found_subscriptions = find_files(directory)
            events, subscriptions = events or found_events, subscriptions or found_subscriptions
        if events is None:
            raise LayoutError("give an export directory, or the events file (and the subscriptions file)")
        return cls((directory or events).name, events, subscriptions, layout, None, end)


@dataclass(frozen=True)
class Outcome:
    backtest: Backtest
    reference: dict[str, object] | None
    curve: list[BudgetPoint]
    deciles: list[float]
    chart: Path | str  # the chart's path, or why there is none


def run_session(source: Source, config: RulesConfig, out: Path, start: datetime | None = None,
                reference: bool = True, console: Console | None = None, model: ChurnModel | None = None,
                begin: datetime | None = None) -> Outcome:
    """Replay with a progress bar, judge, and write alerts, snapshots, report.json and the chart to ``out``
    (``begin``: a deployment starting then, ``run_backtest``)."""
    console = console or Console(stderr=True)
    out.mkdir(parents=True, exist_ok=True)
    rejected: dict[str, int] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeElapsedColumn(), console=console, transient=True) as progress:
        reading = progress.add_task(f"reading {source.events_file.name}", total=source.events_file.stat().st_size)

        def read(done: int) -> None:
            progress.update(reading, completed=done)

        events: Iterator[Event]
        truth: list[Truth]
        report: ImportReport | None = None
        end = source.end
        if source.truth_file is not None:
            truth = read_truth(source.truth_file)
            events = jsonl_events(source.events_file, rejected, read)
        else:
            export = Export(source.events_file, source.subscriptions_file, source.layout, source.end)
            events = export.events(read)
            truth, report, end = export.truth, export.report, source.end or export.report.end
        backtest = run_backtest(source.name, events, truth, config, start, end,
                                _day_progress(progress, reading, source.name, end), report, model, begin)
        backtest.rejected_lines = rejected
        progress.add_task("judging", total=None)
        judged_reference = offline_reference(backtest.snapshots) if reference else None
        curve = budget_curve(backtest)
        deciles = lift_by_decile(backtest)
    with (out / "alerts.jsonl").open("w", encoding="utf-8") as alerts:
        for alert in backtest.alerts:
            alerts.write(alert.model_dump_json() + "\n")
    churned_at = {t.customer_id: int(t.churned_at.timestamp()) for t in backtest.truth if t.churned_at is not None}
    with (out / "snapshots.jsonl").open("w", encoding="utf-8") as snapshots:
        for snap in backtest.snapshots:
            observation = snap.observation.model_dump(mode="json") if snap.observation is not None else None
            snapshots.write(json.dumps({"customer_id": snap.customer_id, "taken_at": snap.taken_at,
                                        "probability": snap.probability, "label": snap.label,
                                        "churned_at": churned_at.get(snap.customer_id),
                                        "observation": observation}) + "\n")
    (out / "report.json").write_text(as_json(backtest, judged_reference, curve, deciles) + "\n", encoding="utf-8")
    chart = draw(backtest, curve, deciles, out / "backtest.png")
    return Outcome(backtest, judged_reference, curve, deciles, chart)


def _day_progress(progress: Progress, reading: TaskID, name: str, end: datetime | None):
    """Progress in days of history replayed (an export's file is all read and sorted by then)."""
    replaying = progress.add_task("replaying", total=None, visible=False)
    first: list[datetime] = []

    def on_day(moment: datetime) -> None:
        if end is None:
            return
        if not first:
            first.append(moment)
            progress.update(reading, completed=progress.tasks[reading].total)
            progress.update(replaying, total=max(1.0, (end - moment).total_seconds() / 86_400), visible=True,
                            description=f"replaying {name}, {moment:%Y-%m-%d} to {end:%Y-%m-%d}")
        progress.update(replaying, completed=(moment - first[0]).total_seconds() / 86_400)

    return on_day
