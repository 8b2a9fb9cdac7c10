"""churnwatch: churn alerts from the customer events on Kafka.

Run the worker, check or publish files of events, replay or backtest a
customer base offline, and try it all with a demo on an embedded broker.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import textwrap
import threading
import uuid
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from aiokafka.errors import KafkaConnectionError, KafkaError

from churnwatch.rules.config import RulesFileError
from churnwatch.dev.embedded_broker import BrokerError
from churnwatch.offline.backtest.warehouse import LayoutError
from churnwatch.settings import Settings, SettingsError, variable
from churnwatch.version import product_version

# What the light install (publishers: `pip install churnwatch`) leaves out; `churnwatch[worker]` brings them.
WORKER_MODULES = frozenset({"faust", "mode", "river", "prometheus_client", "aiohttp", "numpy", "scipy", "msgspec"})

# The settings a command reads besides the worker (which reads them all): connection and topics.
CLIENT_SETTINGS = ("bootstrap_servers", "kafka_security_protocol", "kafka_sasl_mechanism", "kafka_sasl_username",
                   "kafka_sasl_password", "kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile",
                   "topic_usage", "topic_payments", "topic_tickets", "topic_subscriptions", "topic_erasures",
                   "partitions")


def _worker(args: argparse.Namespace) -> int:
    import faust

    from churnwatch.rules import load_rules
    from churnwatch.worker.app import build_app
    from churnwatch.dev.embedded_broker import tuned_for_broker
    from churnwatch.kafka.topics import cluster_id, ensure_topics
    from churnwatch.logs import logging_config

    settings = Settings.from_env()
    rules = load_rules(settings.rules_file)  # a bad rules file stops us before we connect
    if settings.model_start is not None:  # and so does a starting model that cannot be read
        _starting_model(settings.model_start, rules)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    settings = tuned_for_broker(settings, loop.run_until_complete(cluster_id(settings)))
    loop.run_until_complete(ensure_topics(settings))
    app = build_app(settings, rules)
    config = logging_config(settings.log_format, settings.log_level)
    worker = faust.Worker(app, loglevel=settings.log_level, loop=loop, logging_config=config,
                          quiet=config is not None)  # quiet: no banner among the JSON lines
    worker.execute_from_commandline()
    return 0


def _starting_model(path: Path | None, rules: Any) -> Any:
    """The model a run starts from: the one saved at ``path`` (a backtest's), or a new one; a file that cannot
    be used ends the command with one line."""
    from churnwatch.model import ChurnModel
    from churnwatch.model.online import ModelFileError

    if path is None:
        return ChurnModel(rules.model)
    try:
        return ChurnModel.start_from(path, rules.model)
    except ModelFileError as exc:
        raise SystemExit(f"churnwatch: {exc}") from None


def _broker(args: argparse.Namespace) -> int:
    from churnwatch.dev.embedded_broker import EmbeddedBroker

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with EmbeddedBroker(host=args.host, port=args.port) as broker:
        print(f"embedded broker answering on {broker.bootstrap_servers} (pid {broker.pid});"
              " Ctrl-C stops it", flush=True)
        stop.wait()
    print("broker stopped", flush=True)
    return 0


def _validate(args: argparse.Namespace) -> int:
    from churnwatch.event_files import FileCheck, checked_lines

    check = FileCheck(shown=None) if args.all else FileCheck()
    with _lines_of(args.file) as lines:
        for number, checked in checked_lines(lines, Settings.from_env().max_message_bytes):
            check.count(number, checked)
    print(check.report("valid"))
    return 1 if check.rejected else 0


def _lines_of(name: str) -> contextlib.AbstractContextManager[Any]:
    """The file ``name`` to read lines of, or standard input for ``-``."""
    if name == "-":
        return contextlib.nullcontext(sys.stdin.buffer)
    return Path(name).open("rb")


def _publish(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from churnwatch.event_files import FileCheck, checked_lines
    from churnwatch.kafka.publisher import publish_file
    from churnwatch.schemas.events import Event
    from churnwatch.schemas.intake import Rejection
    from churnwatch.kafka.topics import ensure_topics

    settings = _client_settings(args)
    path = Path(args.file)
    check = FileCheck()
    asyncio.run(ensure_topics(settings))
    with Progress(transient=True) as progress, path.open("rb") as lines:
        task = progress.add_task(f"publishing {path.name}", total=path.stat().st_size)

        def checked() -> Iterator[Event | Rejection]:
            for number, event in checked_lines(lines, settings.max_message_bytes):
                check.count(number, event)
                progress.update(task, completed=lines.tell())
                yield event

        asyncio.run(publish_file(settings, checked()))
    print(check.report(f"published to {settings.bootstrap_servers}"))
    return 1 if check.rejected else 0


def _client_settings(args: argparse.Namespace) -> Settings:
    """The settings from the environment, the broker given by ``--broker`` if it was."""
    settings = Settings.from_env()
    return settings.model_copy(update={"bootstrap_servers": args.broker}) if args.broker else settings


def _forget(args: argparse.Namespace) -> int:
    from churnwatch.kafka.publisher import publish_file
    from churnwatch.kafka.topics import ensure_topics
    from churnwatch.schemas.events import ErasureRequest

    settings = _client_settings(args)
    request = ErasureRequest(event_id=f"erasure-{uuid.uuid4()}", customer_id=args.customer_id,
                             occurred_at=datetime.now(UTC), case_id=args.case_id)
    asyncio.run(ensure_topics(settings))
    asyncio.run(publish_file(settings, [request]))
    print(f"erasure of {request.customer_id} requested as of {request.occurred_at.isoformat()} "
          f"({request.event_id}) on {settings.topic_erasures}")
    return 0


def _schemas_export(args: argparse.Namespace) -> int:
    from churnwatch.schemas.export import export_schemas

    for path in export_schemas(Path(args.directory)):
        print(path)
    return 0


def _replay(args: argparse.Namespace) -> int:
    from churnwatch.rules import load_rules
    from churnwatch.schemas.alert import Alert
    from churnwatch.offline.replay import format_summary, replay_lines
    from churnwatch.offline.scorecard import format_scorecard, score_alerts
    from churnwatch.offline.simulator import read_truth

    config = load_rules(Path(args.rules) if args.rules else None)
    until = datetime.fromisoformat(args.until) if args.until else None
    collected: list[Alert] = []
    if until is not None and until.tzinfo is None:
        raise SystemExit("churnwatch: --until needs a timezone, e.g. 2026-03-01T00:00:00Z")
    out = Path(args.out)
    with contextlib.ExitStack() as files:
        events = files.enter_context(Path(args.events).open("rb"))
        alerts = files.enter_context(out.open("w", encoding="utf-8"))
        scores = files.enter_context(Path(args.scores).open("w", encoding="utf-8")) if args.scores else None
        def on_alert(alert: Alert) -> None:
            alerts.write(alert.model_dump_json() + "\n")
            collected.append(alert)

        model = _starting_model(Path(args.model_start) if args.model_start else None, config)
        summary = replay_lines(
            events, config, on_alert, until,
            future_reference=datetime.now(UTC),
            on_score=(lambda line: scores.write(json.dumps(line._asdict()) + "\n")) if scores else None,
            model=model,
        )
    if args.save_model:
        model.save(Path(args.save_model))
    print(format_summary(summary))
    if args.truth:
        truth = read_truth(Path(args.truth))
        start = summary.first_usage_at or summary.watermark
        if start is None or summary.watermark is None:
            raise SystemExit("churnwatch: no events to score")
        card = score_alerts(collected, truth, start, summary.watermark)
        auc = summary.model.get("roc_auc")
        print(format_scorecard(card, auc if isinstance(auc, float) else None))
    return 0


def _backtest(args: argparse.Namespace) -> int:
    from churnwatch.rules import load_rules
    from churnwatch.offline.backtest.run import format_report
    from churnwatch.offline.backtest.session import Source, run_session
    from churnwatch.offline.backtest.warehouse import load_layout

    config = load_rules(Path(args.rules) if args.rules else None)
    end = _moment(args.end, "--end")
    if args.jsonl:
        if not args.truth:
            raise SystemExit("churnwatch: --jsonl needs --truth (who churned, and when)")
        source = Source(Path(args.jsonl).name, Path(args.jsonl), truth_file=Path(args.truth), end=end)
    else:
        source = Source.export(Path(args.export) if args.export else None,
                               Path(args.events) if args.events else None,
                               Path(args.subscriptions) if args.subscriptions else None,
                               load_layout(Path(args.mapping) if args.mapping else None), end)
    out = Path(args.out)
    model = _starting_model(Path(args.model_start) if args.model_start else None, config)
    outcome = run_session(source, config, out, _moment(args.start, "--from"), not args.no_reference, model=model,
                          begin=_moment(args.begin, "--begin"))
    if args.save_model:
        model.save(Path(args.save_model))
    print(format_report(outcome.backtest, outcome.reference))
    print(f"alerts, snapshots, report.json and the chart in {out}/" if isinstance(outcome.chart, Path)
          else f"alerts, snapshots and report.json in {out}/; no chart: {outcome.chart}")
    if args.save_model:
        print(f"the model as it ended in {args.save_model}: start workers with "
              f"CHURNWATCH_MODEL_START={args.save_model}")
    return 0


def _moment(text: str | None, option: str) -> datetime | None:
    """A date or time from the command line; a date alone is midnight UTC."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise SystemExit(f"churnwatch: {option} takes a date or an RFC 3339 time, not {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _simulate(args: argparse.Namespace) -> int:
    from churnwatch.offline.simulator import simulate, write_simulation

    events, truth = simulate(args.customers, args.days, args.seed)
    truth_file = write_simulation(Path(args.out), events, truth)
    churned = sum(t.churned for t in truth)
    print(f"{len(events)} events of {len(truth)} customers ({churned} churn) over {args.days} days"
          f" -> {args.out}, truth -> {truth_file}")
    if args.broker:
        from churnwatch.kafka.publisher import publish_paced
        from churnwatch.offline.simulator import DEFAULT_START
        from churnwatch.kafka.topics import ensure_topics

        settings = _client_settings(args)
        asyncio.run(ensure_topics(settings))
        shown = [-1]

        def on_day(day: float) -> None:
            if int(day) // 10 > shown[0]:
                shown[0] = int(day) // 10
                print(f"  day {int(day)} of {args.days}", flush=True)

        sent, seconds = asyncio.run(publish_paced(settings, events, DEFAULT_START, args.speed, on_day))
        print(f"published {sent} events to {args.broker} in {seconds:.1f}s")
    return 0


def _demo(args: argparse.Namespace) -> int:
    """The demo, stopped with its broker and worker on Ctrl-C, SIGTERM or SIGHUP (``timeout``, a CI limit, a
    closed terminal): the children run in sessions of their own, so only the demo can stop them."""
    from churnwatch.dev.demo import run_demo

    received: list[int] = []

    def quiet_from_now() -> None:
        """What is cut short (an event loop half made, the publisher's tasks) is collected on the way out, with
        warnings and "exception ignored" reports that are no news after a stop asked for."""
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
        warnings.simplefilter("ignore")
        sys.unraisablehook = lambda unraisable: None

    def interrupt(signum: int, frame: Any) -> None:
        received.append(signum)
        quiet_from_now()
        raise KeyboardInterrupt

    # Ctrl-C too: left to Python, ``asyncio.run`` takes it over and only cancels the live phase's task; seen
    # once in CI, the demo then went on to its scorecard and exited 0. Raised here, it stops the demo at once.
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, interrupt)
    try:
        return run_demo(bootstrap=args.broker, customers=args.customers, days=args.days, speed=args.speed,
                        seed=args.seed, timeout_s=args.timeout, page_png=args.screenshot)
    except KeyboardInterrupt:
        stopped_by: int = received[0] if received else signal.SIGINT  # raised by Python before ours was set
        quiet_from_now()
        print(f"churnwatch: demo stopped ({signal.Signals(stopped_by).name}); its broker and worker are stopped",
              file=sys.stderr)
        return 128 + stopped_by


def settings_help(fields: tuple[str, ...] | None = None) -> str:
    """The ``CHURNWATCH_*`` variables a command reads, with their defaults: for its ``--help``."""
    lines = ["environment (CHURNWATCH_*, defaults in brackets):"]
    for name, info in Settings.model_fields.items():
        if fields is not None and name not in fields:
            continue
        default = info.default
        shown = "" if default is None else f" [{getattr(default, 'value', default)}]"
        about = f": {info.description}" if info.description else ""
        lines.append(f"  {variable(name)}{shown}{about}")
    return "\n".join(lines)


def _command(commands: Any, name: str, help: str, fields: tuple[str, ...] | None | Literal[False] = False,
             **options: Any) -> argparse.ArgumentParser:
    """A subcommand; ``fields``: the settings it reads (None: all of them, False: none)."""
    epilog = None if fields is False else settings_help(fields)
    description = textwrap.fill(options.pop("description", help), 88)
    return commands.add_parser(name, help=help, description=description, epilog=epilog,
                               formatter_class=argparse.RawDescriptionHelpFormatter, **options)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="churnwatch", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    root.add_argument("--version", action="version", version=f"churnwatch {product_version()}")
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    worker = _command(commands, "worker", "run the stream worker", fields=None,
                      description="Run the stream worker: events in, alerts, metrics and lookups out. It takes "
                                  "no options: every setting comes from the environment, listed below.")
    worker.set_defaults(run=_worker)

    validate = _command(commands, "validate", "check a file of events (JSON lines) as the worker would",
                        description="Check every line of a file of events (one JSON event per line, any mix of "
                                    "types) with the worker's own validation; print the count per type and each "
                                    "rejected line's reason. Exit status 1 when a line is rejected.")
    validate.add_argument("file", help="events, one JSON object per line; - for standard input")
    validate.add_argument("--all", action="store_true", help="show every rejected line, not the first 20")
    validate.set_defaults(run=_validate)

    publish = _command(commands, "publish", "publish a file of events to the input topics", fields=CLIENT_SETTINGS,
                       description="Validate each line of a file of events and publish the valid ones, keyed by "
                                   "customer_id, to their type's topic (creating the topics if need be). Rejected "
                                   "lines are counted with their reasons and not sent; exit status 1 then.")
    publish.add_argument("file", help="events, one JSON object per line")
    publish.add_argument("--broker", help="bootstrap servers (default: CHURNWATCH_BOOTSTRAP_SERVERS)")
    publish.set_defaults(run=_publish)

    forget = _command(commands, "forget", "ask the workers to erase a customer's data (a data-protection request)",
                      fields=CLIENT_SETTINGS,
                      description="Publish an erasure request for a customer, as of now. The worker replaces the "
                                  "customer's state by a marker without facts (compaction then removes the older "
                                  "states from the changelog), closes their open alerts, and refuses their events "
                                  "from before the request. docs/operations.md says what stays elsewhere.")
    forget.add_argument("customer_id")
    forget.add_argument("--case-id", help="the request's reference in your own records (kept with the request)")
    forget.add_argument("--broker", help="bootstrap servers (default: CHURNWATCH_BOOTSTRAP_SERVERS)")
    forget.set_defaults(run=_forget)

    broker = commands.add_parser("broker", help="run the embedded Kafka-protocol broker (Tansu)")
    broker.add_argument("--host", default="127.0.0.1", help="loopback address to listen on")
    broker.add_argument("--port", type=int, default=9092)
    broker.set_defaults(run=_broker)

    schemas = commands.add_parser("schemas", help="event contracts")
    schemas_commands = schemas.add_subparsers(dest="schemas_command", required=True)
    export = schemas_commands.add_parser("export", help="write one JSON Schema file per contract")
    export.add_argument("directory")
    export.set_defaults(run=_schemas_export)

    replay = commands.add_parser("replay", help="run the rules over an event file (JSONL), offline")
    replay.add_argument("events", help="time-ordered JSONL, one event per line with its type")
    replay.add_argument("--out", required=True, help="alerts, one JSON object per line")
    replay.add_argument("--rules", help="rules file (default: the built-in defaults)")
    replay.add_argument("--until", help="sweep on to this time (RFC 3339) after the last event")
    replay.add_argument("--scores", help="one JSON line per model snapshot: customer, time, probability, label")
    replay.add_argument("--truth", help="truth file (from simulate): print a scorecard of the alerts")
    replay.add_argument("--model-start", help="start from this saved model (churnwatch backtest --save-model)")
    replay.add_argument("--save-model", help="save the model as it ends to this file")
    replay.set_defaults(run=_replay)

    backtest = commands.add_parser(
        "backtest", help="replay a customer base's history through the core and score the alerts against it",
        description="Replay a warehouse export (events and subscriptions CSV, gzip or not; ChurnSim's columns "
                    "by default, others through --mapping) or a churnwatch event file (--jsonl, with --truth) "
                    "through the same core and model as the worker, then print per rule alerts, precision, "
                    "recall, lift over a random alert, lead time and alerts after churn; the model's online "
                    "ROC AUC; and an offline reference model on the same snapshots. Writes alerts, snapshots, "
                    "report.json and a chart (PNG) to --out.")
    backtest.add_argument("export", nargs="?", help="directory with events.csv[.gz] and subscriptions.csv[.gz]")
    backtest.add_argument("--events", help="the events CSV (account, time, event name, value)")
    backtest.add_argument("--subscriptions", help="the subscriptions CSV (account, product, start, end, mrr, ...)")
    backtest.add_argument("--mapping", help="column mapping (TOML); see docs/alert-quality.md, "
                                            "'Backtest on your own export'")
    backtest.add_argument("--jsonl", help="a churnwatch event file instead of an export")
    backtest.add_argument("--truth", help="with --jsonl: who churned and when (as churnwatch simulate writes)")
    backtest.add_argument("--end", help="where the data ends (default: the latest subscription period start, "
                                        "or the last event); later events are left out")
    backtest.add_argument("--from", dest="start", help="judge alerts from this date (default: 45 days after "
                                                       "the first usage event)")
    backtest.add_argument("--begin", help="a deployment starting on this date: the events before it are not "
                                          "replayed, and alerts are judged from it (with --model-start: a worker "
                                          "started with a backtest's model)")
    backtest.add_argument("--rules", help="rules file (default: the built-in defaults)")
    backtest.add_argument("--out", default="backtest-out", help="directory for the results (default: %(default)s)")
    backtest.add_argument("--no-reference", action="store_true", help="skip the offline reference model")
    backtest.add_argument("--model-start", help="start from this saved model instead of a new one")
    backtest.add_argument("--save-model", help="save the model as it ends to this file: a worker started with it "
                                               "(CHURNWATCH_MODEL_START) speaks from its first week")
    backtest.set_defaults(run=_backtest)

    simulate = _command(commands, "simulate", "write a simulated customer base with known outcomes",
                        fields=CLIENT_SETTINGS)
    simulate.add_argument("--customers", type=int, default=1000)
    simulate.add_argument("--days", type=int, default=120)
    simulate.add_argument("--seed", type=int, default=1)
    simulate.add_argument("--out", required=True, help="events JSONL; the truth goes to FILE.truth.jsonl")
    simulate.add_argument("--broker", help="also publish to this Kafka (host:port), topics from CHURNWATCH_*")
    simulate.add_argument("--speed", type=float, default=10.0, help="with --broker: simulated days per second")
    simulate.set_defaults(run=_simulate)

    demo = commands.add_parser("demo", help="a simulated customer base through a live worker, with a scorecard")
    demo.add_argument("--broker", help="bootstrap servers of an existing Kafka (default: embedded)")
    demo.add_argument("--customers", type=int, default=200)
    demo.add_argument("--days", type=int, default=120)
    demo.add_argument("--speed", type=float, default=4.0, help="simulated days per second")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--timeout", type=float, default=180.0,
                      help="most seconds to wait for the worker after publishing")
    demo.add_argument("--screenshot", type=Path, metavar="PNG",
                      help="at the end, the worker's page at / as headless Chromium shows it, saved here")
    demo.set_defaults(run=_demo)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # The client's own "unable to connect" lines would print before our one-line answer; the worker's logging
    # (set up when it starts) still shows them.
    logging.getLogger("aiokafka").addHandler(logging.NullHandler())
    try:
        return int(args.run(args))
    except (ValidationError, SettingsError) as exc:
        print(f"churnwatch: invalid settings: {exc}", file=sys.stderr)
        return 2
    except (RulesFileError, LayoutError, BrokerError) as exc:
        print(f"churnwatch: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
        print(f"churnwatch: {exc.filename or 'a file'}: {exc.strerror}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`churnwatch validate FILE | head`): nothing more to tell it, and Python's own
        # flush at exit must not fail on the closed pipe either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (KafkaConnectionError, TimeoutError) as exc:
        servers = getattr(args, "broker", None) or _bootstrap_servers()
        print(f"churnwatch: cannot reach the Kafka broker at {servers} ({type(exc).__name__}); is it running, "
              "and is CHURNWATCH_BOOTSTRAP_SERVERS right?", file=sys.stderr)
        return 3
    except KafkaError as exc:
        print(f"churnwatch: Kafka refused: {exc}", file=sys.stderr)
        return 3
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in WORKER_MODULES:
            raise
        print(f"churnwatch: '{args.command}' needs the worker's dependencies ({exc.name} is missing): "
              "pip install 'churnwatch[worker]'", file=sys.stderr)
        return 2


def _bootstrap_servers() -> str:
    try:
        return Settings.from_env().bootstrap_servers
    except (ValidationError, SettingsError):
        return "(unreadable CHURNWATCH_BOOTSTRAP_SERVERS)"
