"""``churnwatch demo``: a simulated customer base through a real worker, live.

Starts what it needs (the embedded broker unless ``--broker`` is given, and a
worker process on the event clock), publishes a simulated population in
compressed time (``speed`` simulated days per second), shows each alert as it
arrives on the alerts topic, and ends with a scorecard against the
simulation's truth, the worker's own live judgement of its alerts (``GET
/rules``: what a deployment without a truth file has), the model's AUC and
the throughput. It stops everything it started.

End of stream: after the last event the demo publishes one malformed marker
to every partition of every input topic; when all markers are back on the
dead-letter topic, the worker has read everything before them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from churnwatch.rules import load_rules
from churnwatch.rules.clock_math import to_seconds
from churnwatch.rules.config import ModelConfig
from churnwatch.rules.labels import version_start
from churnwatch.schemas.alert import Alert, AlertStatus
from churnwatch.schemas.dead_letter import DeadLetter
from churnwatch.schemas.events import Event
from churnwatch.model import ChurnModel
from churnwatch.dev.browser import BrowserMissing, screenshot
from churnwatch.dev.embedded_broker import WORKER_TUNING, EmbeddedBroker, free_port
from churnwatch.kafka.publisher import EventPublisher, publish_paced
from churnwatch.kafka.reader import follow
from churnwatch.offline.scorecard import format_scorecard, score_alerts
from churnwatch.open_alerts import format_open_alerts
from churnwatch.scoreboard import format_report
from churnwatch.settings import Settings
from churnwatch.offline.simulator import DEFAULT_START, simulate
from churnwatch.kafka.topics import ensure_topics
from churnwatch.dev.worker_process import WorkerProcess

MARKER = b"churnwatch-demo: end of stream (not an event)"
SEVERITY_STYLE = {"info": "dim", "warning": "yellow", "high": "bold red", "critical": "bold white on red"}
QUIET_S = 3.0  # after the end of stream, how long without a new alert before the demo ends
PAGE_HEIGHT = 2000  # the screenshot's window: the whole page of the demo's end, its tables below the alerts
OPEN_ALERTS_SHOWN = 10  # the end's table of open alerts: the most urgent, as a support lead's list starts
FOLLOW_AT_MOST_S = 3600.0  # the alert follower's own bound; the demo stops it sooner


def format_alert(alert: Alert) -> str:
    """One line of the live feed (plain text; the console adds colour)."""
    return (
        f"{alert.triggered_at:%Y-%m-%d} {alert.status.value.upper():<8} {alert.severity.value:<8} "
        f"p{alert.priority:<3} {alert.customer_id:<12} {alert.rule.value:<16} {alert.reasons[0]}"
    )


@dataclass
class LiveRun:
    """What the demo saw while the worker ran."""

    alerts: list[Alert] = field(default_factory=list)
    markers_back: int = 0
    published: int = 0
    publish_s: float = 0.0
    drained_s: float = 0.0


@contextlib.contextmanager
def _broker(bootstrap: str | None, console: Console) -> Iterator[tuple[str, dict[str, str]]]:
    if bootstrap:
        yield bootstrap, {}
        return
    with EmbeddedBroker() as broker:
        console.print(f"embedded Kafka-protocol broker (Tansu) on {broker.bootstrap_servers}, pid {broker.pid}")
        yield broker.bootstrap_servers, WORKER_TUNING


async def _publish(settings: Settings, events: list[Event], days: int, speed: float,
                   run: LiveRun, progress: Progress) -> None:
    """The events at ``speed`` days a second, then an end-of-stream marker on every input partition."""
    task = progress.add_task("publishing", total=days, day=0)

    def on_day(day: float) -> None:
        progress.update(task, completed=min(day, days), day=int(day))

    run.published, run.publish_s = await publish_paced(settings, events, DEFAULT_START, speed, on_day)
    progress.update(task, completed=days, day=days)
    async with EventPublisher(settings) as publisher:
        for topic in settings.input_topics:
            for partition in range(settings.partitions):
                await publisher.publish_raw(topic, b"end-of-stream", MARKER, partition)


async def _follow_alerts(settings: Settings, run: LiveRun, console: Console, stop: asyncio.Event) -> None:
    topics = (settings.topic_alerts, settings.topic_dead_letters)
    async for record in follow(settings.bootstrap_servers, topics, FOLLOW_AT_MOST_S, until=stop.is_set):
        if record.topic == settings.topic_dead_letters:
            if DeadLetter.model_validate_json(record.value or b"").raw_value() == MARKER:
                run.markers_back += 1
            continue
        alert = Alert.model_validate_json(record.value or b"")
        run.alerts.append(alert)
        style = "green" if alert.status is AlertStatus.RESOLVED else SEVERITY_STYLE[alert.severity]
        console.print(format_alert(alert), style=style, markup=False, highlight=False)


async def _run_live(settings: Settings, events: list[Event], days: int, speed: float,
                    worker: WorkerProcess, console: Console, timeout_s: float, model: ModelConfig) -> LiveRun:
    run = LiveRun()
    stop = asyncio.Event()
    follower = asyncio.create_task(_follow_alerts(settings, run, console, stop))
    columns = (TextColumn("[progress.description]{task.description}"), BarColumn(),
               TextColumn("day {task.fields[day]}/" + str(days)), TimeElapsedColumn())
    started = time.monotonic()
    try:
        with Progress(*columns, console=console, transient=False) as progress:
            await _publish(settings, events, days, speed, run, progress)
        markers = len(settings.input_topics) * settings.partitions
        console.print(f"published {run.published} events in {run.publish_s:.1f}s; "
                      "waiting for the worker to read to the end ...")
        deadline = time.monotonic() + timeout_s
        while run.markers_back < markers and time.monotonic() < deadline and not worker.dead():
            await asyncio.sleep(0.2)
        run.drained_s = time.monotonic() - started
        # The model learns by week once every partition's week is done (docs/model.md): let it reach the
        # last week, so its alerts and the numbers below are those of all that was published.
        last_week = version_start(to_seconds(max(e.occurred_at for e in events)), model)
        while ((_model_version(settings) or 0) < last_week and time.monotonic() < deadline
               and not worker.dead()):
            await asyncio.sleep(0.2)
        # Let the last sweeps (every second) fire what the end of time made due.
        seen = -1
        while seen != len(run.alerts) and time.monotonic() < deadline and not worker.dead():
            seen = len(run.alerts)
            await asyncio.sleep(QUIET_S)
    finally:
        stop.set()
        await follower
    return run


def _model_version(settings: Settings) -> float | None:
    """The week the worker's model has learned up to (``churnwatch_model_learned_until_seconds``)."""
    url = f"http://{settings.web_host}:{settings.web_port}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            for line in response.read().decode().splitlines():
                if line.startswith("churnwatch_model_learned_until_seconds "):
                    return float(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _worker_json(settings: Settings, path: str) -> dict[str, Any] | None:
    """The worker's JSON answer at ``path`` (None if it does not answer)."""
    try:
        with urllib.request.urlopen(f"http://{settings.web_host}:{settings.web_port}{path}", timeout=10) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return answer
    except (OSError, ValueError):
        return None


def _live_outcomes(settings: Settings) -> dict[str, Any] | None:
    """The worker's ``GET /rules``: its alerts judged live (None if it does not answer)."""
    return _worker_json(settings, "/rules")


def _open_alerts(settings: Settings, sent: int, timeout_s: float = 15.0) -> dict[str, Any] | None:
    """The worker's ``GET /alerts`` once its board has read every alert message the demo read back."""
    deadline = time.monotonic() + timeout_s
    while (answer := _worker_json(settings, f"/alerts?limit={OPEN_ALERTS_SHOWN}")) is None \
            or answer["messages_read"] < sent:
        if time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    return answer


def _screenshot(settings: Settings, path: Path, console: Console) -> None:
    """The page at ``/`` as a browser shows it, before the worker stops."""
    try:
        screenshot(f"http://{settings.web_host}:{settings.web_port}/", path, height=PAGE_HEIGHT)
    except (BrowserMissing, subprocess.SubprocessError) as exc:
        console.print(f"no screenshot of the page at /: {exc}", markup=False)
        return
    console.print(f"the page at / (what a support lead opens), as Chromium shows it: {path}", markup=False)


def run_demo(
    bootstrap: str | None = None,
    customers: int = 200,
    days: int = 120,
    speed: float = 4.0,
    seed: int = 7,
    timeout_s: float = 180.0,
    page_png: Path | None = None,
) -> int:
    console = Console(soft_wrap=True)  # a feed line stays one line, in a terminal or a log
    rules = load_rules()
    events, truth = simulate(customers, days, seed)
    churned = sum(t.churned for t in truth)
    console.print(f"simulated {customers} customers over {days} days (seed {seed}): {len(events)} events, "
                  f"{churned} will churn; publishing at {speed:g} days per second")
    with _broker(bootstrap, console) as (servers, tuning), tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            bootstrap_servers=servers,
            app_id=f"churnwatch-demo-{uuid.uuid4().hex[:8]}",
            data_dir=Path(tmp) / "data",
            web_port=free_port(),
            clock="event",  # the simulation's own timestamps age the customers
            sweep_interval_s=1.0,
        )
        asyncio.run(ensure_topics(settings))
        worker = WorkerProcess(settings, Path(tmp) / "worker.log", tuning)
        with worker:
            console.print(f"worker started, pid {worker.pid}, app id {settings.app_id}; "
                          f"metrics at http://{settings.web_host}:{settings.web_port}/metrics")
            run = asyncio.run(_run_live(settings, events, days, speed, worker, console, timeout_s, rules.model))
            alive = worker.alive()
            outcomes = _live_outcomes(settings) if alive else None
            still_open = _open_alerts(settings, len(run.alerts)) if alive else None
            if page_png is not None and alive:
                _screenshot(settings, page_png, console)
        code = worker.process.returncode if worker.process else None
        model = ChurnModel.load(settings.model_file, rules.model).summary()  # saved at shutdown
        if not alive or not run.alerts or code != 0:
            console.print(worker.log_text()[-4000:], markup=False)
    end = DEFAULT_START + timedelta(days=days)
    card = score_alerts(run.alerts, truth, DEFAULT_START, end)
    auc = model["roc_auc"]
    console.print(format_scorecard(card, auc if isinstance(auc, float) else None), markup=False)
    if outcomes is not None:
        console.print(f"live, as the worker judged its own alerts (GET /rules; horizon {outcomes['horizon_days']} "
                      "days, alerts of the last days not judged yet):", markup=False)
        console.print(format_report(outcomes), markup=False)
    if still_open is not None:
        console.print("open at the end, most urgent first (GET /alerts):", markup=False)
        console.print(format_open_alerts(still_open), markup=False)
    rate = run.published / run.drained_s if run.drained_s else 0.0
    console.print(
        f"{len(run.alerts)} alerts read back from '{settings.topic_alerts}'; worker read {run.published} "
        f"events in {run.drained_s:.1f}s ({rate:.0f} events/s, paced by the publisher at {speed:g} days/s); "
        f"model learned from {model['labels']} labels; worker stopped (exit {code}), broker stopped"
    )
    return 0 if run.alerts and alive and code == 0 else 1
