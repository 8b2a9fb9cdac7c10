"""``make bench``: one run, one broker, one table of figures (also bench-results.json).

Rates are medians of several runs; compare the ratios, not the absolute
numbers, across machines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench import broker as on_broker
from bench import pure
from stream_app.embedded_broker import WORKER_TUNING, EmbeddedBroker
from stream_app.settings import Settings


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench")
    parser.add_argument("--events", type=int, default=100_000, help="events published for the broker figures")
    parser.add_argument("--worker-events", type=int, default=20_000, help="events the worker rate is taken over")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default="bench-results.json")
    args = parser.parse_args()
    # A SIGTERM unwinds like Ctrl-C, so the broker and workers we started are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    began = time.monotonic()
    figures: dict[str, object] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
    }

    def show(name: str, value: object, unit: str = "") -> None:
        figures[name] = value
        if isinstance(value, float):
            text = f"{value:,.3f}" if abs(value) < 10 else f"{value:,.0f}"
        else:
            text = str(value)
        print(f"  {name:<44} {text:>14} {unit}", flush=True)

    print(f"churnwatch bench on {os.cpu_count()} cpus, python {platform.python_version()}")
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        settings = on_broker.fresh_settings(broker.bootstrap_servers, Path(tmp) / "data")
        events = on_broker.realistic_mix(args.events, args.customers)
        asyncio.run(on_broker.publish(settings, events))
        print(f"published {len(events):,} events over {args.customers:,} customers to the embedded broker")
        raw = statistics.median(asyncio.run(on_broker.raw_rate(settings, len(events))) for _ in range(args.runs))
        show("(a) raw aiokafka consume + parse", raw, "events/s")

        def runs(measure) -> float:  # type: ignore[no-untyped-def]
            return statistics.median(measure(n) for n in range(args.runs))

        def named(tag: str, n: int) -> Settings:
            return settings.model_copy(update={"app_id": f"{settings.app_id}-{tag}{n}"})

        bare = runs(lambda n: on_broker.bare_faust_rate(named("bare", n), len(events), WORKER_TUNING))
        show("(b) bare Faust agent (parse only)", bare, "events/s")
        bare_table = runs(lambda n: on_broker.bare_faust_rate(
            named("table", n), args.worker_events, WORKER_TUNING, table=True))
        show("(b2) bare Faust agent + one table write/event", bare_table, "events/s")
        worker = runs(lambda n: on_broker.worker_rate(named("w", n), args.worker_events, WORKER_TUNING))
        show("(c) churnwatch worker, full pipeline", worker, "events/s")
        show("(d) c/a", worker / raw, "")
        show("(d) c/b", worker / bare, "")
        show("(d) c/b2", worker / bare_table, "")
        # The embedded broker needs one record per producer batch (see
        # WORKER_TUNING); a real cluster does not. This shows what that costs.
        batched = runs(lambda n: on_broker.worker_rate(
            named("wb", n), args.worker_events, {**WORKER_TUNING, "CHURNWATCH_PRODUCER_MAX_BATCH_SIZE": "16384"}))
        show("(c2) worker, multi-record producer batches", batched, "events/s")
        # A smaller customer base: a customer's events meet in a batch, and
        # its state is written once per batch (c has a new customer per event).
        few = on_broker.fresh_settings(broker.bootstrap_servers, Path(tmp) / "few")
        asyncio.run(on_broker.publish(few, on_broker.realistic_mix(args.worker_events, 1_000)))
        coalesced = runs(lambda n: on_broker.worker_rate(
            few.model_copy(update={"app_id": f"{few.app_id}-w{n}"}), args.worker_events, WORKER_TUNING))
        show("(c3) worker, same mix over 1,000 customers", coalesced, "events/s")
        show("(d) c3/b", coalesced / bare, "")
        p50, p99, samples = on_broker.alert_latency(
            on_broker.fresh_settings(broker.bootstrap_servers, Path(tmp) / "latency"), worker / 2, WORKER_TUNING)
        show(f"(e) payment failure -> alert p50 ({samples} alerts)", p50 * 1000, "ms")
        show("(e) payment failure -> alert p99", p99 * 1000, "ms")
        two = on_broker.worker_rate(settings.model_copy(update={"app_id": f"{settings.app_id}-two"}),
                                    args.worker_events, WORKER_TUNING, workers=2)
        show("(h) two workers / one", two / worker, "")
    rate, states, lines = pure.replay_rate(runs=args.runs)
    show("(i) replay (core without Kafka)", rate, "events/s")
    score_us, learn_us = pure.model_costs(states)
    show("(j) model: one score with its explanation", score_us, "us")
    show("(j) model: one label learned", learn_us, "us")
    show("(f) state bytes per customer (table value)", pure.state_bytes(states), "bytes")
    show("(f) RSS growth per customer (100k values)", pure.rss_per_100k(states), "bytes")
    for customers in (10_000, 100_000, 1_000_000):
        show(f"(g) sweep, {customers:,} customers, 1% due", pure.sweep_cost(customers) * 1000, "ms")
    figures["seconds"] = round(time.monotonic() - began, 1)
    Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")
    print(f"done in {figures['seconds']} s; figures in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
