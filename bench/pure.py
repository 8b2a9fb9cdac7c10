"""Figures of the pure core, no broker: replay rate, state size, sweep cost."""

from __future__ import annotations

import csv
import os
import random
import statistics
import time
import zlib
from collections import Counter
from pathlib import Path

from churnwatch.rules import RulesConfig
from churnwatch.rules.config import ModelConfig
from churnwatch.rules.labels import Labelled
from churnwatch.rules.state import CustomerState, Observation
from churnwatch.rules.state_encoding import decode, encode, outline
from churnwatch.model import ChurnModel
from churnwatch.due_index import DueIndex
from churnwatch.offline.backtest.export_rows import open_text
from churnwatch.offline.backtest.session import Source
from churnwatch.offline.backtest.warehouse import Export
from churnwatch.offline.replay import Replay
from churnwatch.offline.simulator import simulate


def median_of(runs: int, measure) -> float:
    return statistics.median(measure() for _ in range(runs))


def replay_rate(customers: int = 200, days: int = 120, runs: int = 3) -> tuple[float, list[CustomerState], int]:
    """Events per second of the core alone (validation, state, rules, model), as ``churnwatch replay``."""
    events, _ = simulate(customers, days, seed=7)
    lines = [e.model_dump_json() for e in events]
    states: list[CustomerState] = []

    def once() -> float:
        run = Replay(RulesConfig(), lambda alert: None)
        started = time.perf_counter()
        for line in lines:
            run.feed(line)
        elapsed = time.perf_counter() - started
        states[:] = list(run.states.values())
        return len(lines) / elapsed

    return median_of(runs, once), states, len(lines)


def state_bytes(states: list[CustomerState]) -> float:
    """Mean serialised table value (the changelog message body) per customer."""
    return statistics.mean(len(s.to_bytes()) for s in states)


def json_value(state: CustomerState) -> bytes:
    """The table value earlier versions wrote (compressed JSON, before version 2), for comparison."""
    return zlib.compress(state.model_dump_json(exclude_defaults=True).encode(), 1)


def json_state_bytes(states: list[CustomerState]) -> float:
    """The same in the encoding earlier versions wrote, for comparison."""
    return statistics.mean(len(json_value(s)) for s in states)


def codec_costs(states: list[CustomerState], rounds: int = 20) -> dict[str, float]:
    """CPU microseconds per state to write a table value, to read it back, and to read its outline (what a
    restore reads of every customer), beside the same for the compressed JSON earlier versions wrote."""
    def cpu_us(work, items: list) -> float:  # type: ignore[no-untyped-def]
        started = time.process_time()
        for _ in range(rounds):
            for item in items:
                work(item)
        return (time.process_time() - started) / rounds / len(items) * 1e6

    written = [encode(s) for s in states]
    plain = [json_value(s) for s in states]
    return {
        "write": cpu_us(encode, states),
        "read": cpu_us(decode, written),
        "outline": cpu_us(outline, written),
        "json write": cpu_us(json_value, states),
        "json read": cpu_us(decode, plain),
        "json outline": cpu_us(outline, plain),
    }


def busiest_states(directory: Path, share: float = 0.1) -> list[CustomerState]:
    """The states a replay of a warehouse export leaves for its busiest customers (the top ``share`` by
    events): the states a store holds most of its bytes for."""
    source = Source.export(directory)
    counts: Counter[str] = Counter()
    with open_text(source.events_file) as stream:
        column = source.layout.events.customer
        for row in csv.DictReader(stream):
            counts[row[column]] += 1
    busiest = {customer for customer, _ in counts.most_common(max(1, round(len(counts) * share)))}
    run = Replay(RulesConfig(), lambda alert: None)
    export = Export(source.events_file, source.subscriptions_file, source.layout)
    for event in export.events():
        if event.customer_id in busiest:
            run.feed_event(event)
    return [state for customer, state in run.states.items() if customer in busiest]


def rss_per_100k(states: list[CustomerState]) -> float:
    """Resident memory growth for 100,000 customers' serialised states, in bytes per customer."""
    template = [s.to_bytes() for s in states]
    before = rss_bytes()
    table = {f"c{n}": bytes(bytearray(template[n % len(template)])) for n in range(100_000)}  # real copies
    grown = rss_bytes() - before
    assert len(table) == 100_000
    return grown / 100_000


def rss_bytes(pid: int | None = None) -> int:
    """Resident memory of a process (this one by default), from Linux's /proc."""
    with open(f"/proc/{pid or 'self'}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user + system) a process has used so far, from Linux's /proc: machines here are shared,
    and CPU time per event moves much less with the load than a rate does."""
    with open(f"/proc/{pid or 'self'}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sweep_cost(customers: int, due_share: float = 0.01, runs: int = 5) -> float:
    """Seconds for one sweep to pop the due customers out of the index (1% due)."""
    rng = random.Random(1)

    def once() -> float:
        index = DueIndex()
        for n in range(customers):
            # 1% due before t=1000, the rest later.
            due = rng.randint(0, 999) if n < customers * due_share else rng.randint(2_000, 10_000_000)
            index.set(f"c{n}", due, n % 4)
        started = time.perf_counter()
        popped = index.pop_due(1_000, limit=customers)
        elapsed = time.perf_counter() - started
        assert len(popped) == int(customers * due_share)
        return elapsed

    return median_of(runs, once)


def model_costs(states: list[CustomerState], calls: int = 5_000) -> tuple[float, float]:
    """Microseconds per score and per learned label, on the replay's own observations.

    Scoring happens once per customer and week (at the snapshot), learning once
    per label: neither is on the per-event path.
    """
    observations: list[Observation] = [s.observation for state in states for s in state.snapshots
                                       if s.observation is not None]
    rng = random.Random(2)
    model = ChurnModel(ModelConfig())
    examples = [Labelled("c", n, observations[n % len(observations)], "v2", rng.random(), int(rng.random() < 0.1),
                         rng.random()) for n in range(calls)]
    started = time.perf_counter()
    for example in examples:
        model.learn(example)
    learn_us = (time.perf_counter() - started) / calls * 1e6
    started = time.perf_counter()
    for n in range(calls):
        model.score(observations[n % len(observations)], explain=True)
    return (time.perf_counter() - started) / calls * 1e6, learn_us
