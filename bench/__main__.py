"""``make bench``: one run, both brokers, one table of figures (also bench-results.json).

The broker figures are taken on the embedded broker and on Apache Kafka
(the JVM broker from its own jars) in the same run, each against the raw
aiokafka consumer, the bare Faust agent and the peer a user would weigh us
against (Quix Streams, stateless and stateful) on that broker; ``--broker``
picks one. Rates are medians of several runs, and beside each rate the CPU
microseconds per event of the process doing the work (and of the broker
meanwhile): rates move with the machine's load, CPU time per event much
less. Compare ratios and CPU times across machines, not rates.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench import broker as on_broker
from bench import pure
from bench.broker import Measure
from churnwatch.dev.embedded_broker import BrokerError
from churnwatch.settings import Settings

BROKERS = ("embedded", "kafka")


def on(kind: str, args: argparse.Namespace, show: Callable[[str, object, str], None]) -> None:
    """The broker figures on one broker: (a) .. (h)."""
    def runs(measure: Callable[[int], Measure]) -> Measure:
        taken = [measure(n) for n in range(args.runs)]
        middle = sorted(taken, key=lambda m: m.rate)[len(taken) // 2]
        return middle

    def report(name: str, measure: Measure) -> float:
        show(f"{name}", measure.rate, "events/s")
        show(f"{name}: CPU per event", measure.cpu_us, "us")
        if measure.broker_cpu_us is not None:
            show(f"{name}: broker CPU per event", measure.broker_cpu_us, "us")
        return measure.rate

    with tempfile.TemporaryDirectory() as tmp, on_broker.started(kind, Path(tmp)) as (servers, pid, tuning, other):
        settings = on_broker.fresh_settings(servers, Path(tmp) / "data")
        events = on_broker.realistic_mix(args.events, args.customers)
        asyncio.run(on_broker.publish(settings, events))
        print(f"published {len(events):,} events over {args.customers:,} customers to {kind} ({servers})",
              flush=True)

        def named(tag: str, n: int) -> Settings:
            return settings.model_copy(update={"app_id": f"{settings.app_id}-{tag}{n}"})

        raw = report("(a) raw aiokafka consume + parse",
                     runs(lambda n: asyncio.run(on_broker.raw_rate(settings, len(events), pid))))
        bare = report("(b) bare Faust agent (parse only)",
                      runs(lambda n: on_broker.bare_faust_rate(named("bare", n), len(events), tuning)))
        bare_table = report("(b2) bare Faust agent + one table write/event", runs(lambda n: on_broker.bare_faust_rate(
            named("table", n), args.worker_events, tuning, table=True)))
        peer = peer_state = None
        try:
            peer = report("(p) Quix Streams peer (parse only)",
                          runs(lambda n: on_broker.peer_rate(settings, len(events), stateful=False)))
            peer_state = report("(p2) Quix Streams peer + per-customer state", runs(
                lambda n: on_broker.peer_rate(settings, len(events), stateful=True)))
        except RuntimeError as exc:
            print(f"  the Quix Streams peer skipped: {exc}", flush=True)
        # The worker reads and processes whole topics of its own (the first events of the mix): it merges
        # its topics by event time, so at any moment it has read ahead of what it has processed (up to tens
        # of thousands of messages in a backlog), and a count of the first N processed out of a longer
        # topic would charge it the CPU of reading messages it has not processed yet.
        own = on_broker.fresh_settings(servers, Path(tmp) / "own")
        asyncio.run(on_broker.publish(own, events[:args.worker_events]))

        def owned(tag: str, n: int) -> Settings:
            return own.model_copy(update={"app_id": f"{own.app_id}-{tag}{n}"})

        worker = report("(c) churnwatch worker, full pipeline", runs(lambda n: on_broker.worker_rate(
            owned("w", n), args.worker_events, tuning, broker_pid=pid)))
        show("(d) c/a", worker / raw, "")
        show("(d) c/b", worker / bare, "")
        show("(d) c/b2", worker / bare_table, "")
        if peer is not None and peer_state is not None:
            show("(d) b/p", bare / peer, "")
            show("(d) c/p2", worker / peer_state, "")
        batching = "one record per producer batch" if kind == "kafka" else "multi-record producer batches"
        report(f"(c2) worker, {batching}", runs(lambda n: on_broker.worker_rate(
            owned("wb", n), args.worker_events, other, broker_pid=pid)))
        # A smaller customer base: a customer's events meet in a batch, and
        # its state is written once per batch (c has a new customer per event).
        few = on_broker.fresh_settings(servers, Path(tmp) / "few")
        asyncio.run(on_broker.publish(few, on_broker.realistic_mix(args.worker_events, 1_000)))
        coalesced = report("(c3) worker, same mix over 1,000 customers", runs(lambda n: on_broker.worker_rate(
            few.model_copy(update={"app_id": f"{few.app_id}-w{n}"}), args.worker_events, tuning, broker_pid=pid)))
        show("(d) c3/b", coalesced / bare, "")
        p50, p99, samples = on_broker.alert_latency(
            on_broker.fresh_settings(servers, Path(tmp) / "latency"), worker / 2, tuning)
        show(f"(e) payment failure -> alert p50 ({samples} alerts)", p50 * 1000, "ms")
        show("(e) payment failure -> alert p99", p99 * 1000, "ms")
        # A customer base where a few customers send much and most little (Zipf-like), over a day.
        heavy = on_broker.fresh_settings(servers, Path(tmp) / "heavy")
        asyncio.run(on_broker.publish(heavy, on_broker.heavy_tailed_mix(args.worker_events, args.customers)))
        tailed = report("(c4) worker, heavy-tailed mix", runs(lambda n: on_broker.worker_rate(
            heavy.model_copy(update={"app_id": f"{heavy.app_id}-w{n}"}), args.worker_events, tuning, broker_pid=pid)))
        show("(d) c4/c", tailed / worker, "")
        # One worker against two, each on empty topics filled once the group has formed: no rebalance
        # inside the measured stretch.
        alone, pair = (on_broker.worker_rate(on_broker.fresh_settings(servers, Path(tmp) / f"h{n}"),
                                             args.worker_events, tuning, workers=n, broker_pid=pid,
                                             publish_when_settled=events[:args.worker_events]) for n in (1, 2))
        show("(h) one worker, group formed first", alone.rate, "events/s")
        show("(h) two workers, group formed first", pair.rate, "events/s")
        show("(h) two workers / one", pair.rate / alone.rate, "")
        show("(h) one worker: CPU per event", alone.cpu_us, "us")
        show("(h) two workers: CPU per event", pair.cpu_us, "us")


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench")
    parser.add_argument("--broker", choices=(*BROKERS, "both", "none"), default="both",
                        help="where the broker figures are taken (default: both, in one run; none: only the core's)")
    parser.add_argument("--events", type=int, default=100_000, help="events published for the broker figures")
    parser.add_argument("--worker-events", type=int, default=20_000, help="events the worker rate is taken over")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default="bench-results.json")
    parser.add_argument("--export", type=Path, metavar="DIR",
                        help="a warehouse export: its busiest 10%% of customers' state sizes too (minutes)")
    args = parser.parse_args()
    # A SIGTERM unwinds like Ctrl-C, so the broker and workers we started are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    began = time.monotonic()
    figures: dict[str, object] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
    }

    def shower(section: dict[str, object]) -> Callable[[str, object, str], None]:
        def show(name: str, value: object, unit: str = "") -> None:
            section[name] = value
            if isinstance(value, float):
                text = f"{value:,.3f}" if abs(value) < 10 else f"{value:,.0f}"
            else:
                text = str(value)
            print(f"  {name:<52} {text:>14} {unit}", flush=True)
        return show

    print(f"churnwatch bench on {os.cpu_count()} cpus, python {platform.python_version()}")
    for kind in {"both": BROKERS, "none": ()}.get(args.broker, (args.broker,)):
        section: dict[str, object] = {}
        figures[kind] = section
        print(f"on the {'embedded broker (Tansu)' if kind == 'embedded' else 'Apache Kafka broker (JVM)'}:",
              flush=True)
        try:
            on(kind, args, shower(section))
        except BrokerError as exc:
            print(f"  skipped: {exc}", flush=True)
            section["skipped"] = str(exc)
    show = shower(figures)
    print("without a broker:")
    rate, states, lines = pure.replay_rate(runs=args.runs)
    show("(i) replay (core without Kafka)", rate, "events/s")
    score_us, learn_us = pure.model_costs(states)
    show("(j) model: one score with its explanation", score_us, "us")
    show("(j) model: one label learned", learn_us, "us")
    show("(f) state bytes per customer (table value)", pure.state_bytes(states), "bytes")
    show("(f) the same as compressed JSON (before version 2)", pure.json_state_bytes(states), "bytes")
    for name, cost in pure.codec_costs(states).items():
        show(f"(f) CPU per state: {name}", cost, "us")
    if args.export is not None:
        busiest = pure.busiest_states(args.export)
        show(f"(f) state bytes, busiest 10% of {args.export.name} ({len(busiest):,})", pure.state_bytes(busiest),
             "bytes")
        show("(f) busiest 10%, as compressed JSON (before version 2)", pure.json_state_bytes(busiest), "bytes")
    show("(f) RSS growth per customer (100k values)", pure.rss_per_100k(states), "bytes")
    for customers in (10_000, 100_000, 1_000_000):
        show(f"(g) sweep, {customers:,} customers, 1% due", pure.sweep_cost(customers) * 1000, "ms")
    figures["seconds"] = round(time.monotonic() - began, 1)
    Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")
    print(f"done in {figures['seconds']} s; figures in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
