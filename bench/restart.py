"""``make bench-restart``: how long a worker takes to be ready again with many customers' state.

The changelog topic is the durable copy of the worker's table: in memory
(``memory://``) every start reads the whole changelog back; on disk
(``rocksdb://``) a restart reads only what the changelog gained since the
store's last write. This fills a changelog with ``--customers`` states (the
simulator's states, each under its own customer id, as a worker would have
written them: one table value per customer, ``CustomerState.to_bytes``), then, for each store,
starts a worker on it twice (a first start and a restart) and reports for
each the seconds from start to ready (``/readyz``), the worker's resident
memory when ready and per customer beyond an empty worker's, and the data
directory's size on disk.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import asyncio
import json
import signal
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench import broker as on_broker
from bench import pure
from churnwatch.dev.child_process import ChildProcess
from churnwatch.dev.worker_process import WorkerProcess, settings_env
from churnwatch.rules.state import CustomerState, evolve
from churnwatch.settings import Settings
from churnwatch.worker.processor import STATE_TABLE


BARE_TABLE = "bare-state"  # bench.faust_bare's table


def changelog_topic(settings: Settings, table: str = STATE_TABLE) -> str:
    """The name Faust gives a table's changelog."""
    return f"{settings.app_id}-{table}-changelog"


async def fill_changelog(settings: Settings, customers: int, templates: list[CustomerState],
                         every: int = 100_000, table: str = STATE_TABLE) -> None:
    """``customers`` states in the changelog, keyed as the worker keys them (the customer id as JSON)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(changelog_topic(settings, table), settings.partitions,
                                            settings.replication_factor,
                                            topic_configs={"cleanup.policy": "compact"})])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, linger_ms=20, max_batch_size=524_288)
    await producer.start()
    try:
        for n in range(customers):
            customer = f"r{n:07d}"
            state = evolve(templates[n % len(templates)], {"customer_id": customer})
            await producer.send(changelog_topic(settings, table), key=json.dumps(customer).encode(),
                                value=state.to_bytes(), partition=n % settings.partitions)
            if (n + 1) % every == 0:
                print(f"  changelog: {n + 1:,} of {customers:,} states written", flush=True)
        await producer.flush()
    finally:
        await producer.stop()


def state_templates() -> list[CustomerState]:
    """Simulated customers' states, each copied under many customer ids."""
    _, states, _ = pure.replay_rate(runs=1)
    return states


def ready_after(worker: WorkerProcess, timeout_s: float) -> float:
    """Seconds from now until the worker's /readyz says ready."""
    began = time.monotonic()
    url = f"http://{worker.settings.web_host}:{worker.settings.web_port}/readyz"
    while time.monotonic() - began < timeout_s:
        if worker.dead():
            raise RuntimeError(f"the worker exited: {worker.log_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if json.loads(response.read()).get("ready"):
                    return time.monotonic() - began
        except OSError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"the worker was not ready within {timeout_s} s: {worker.log_text()[-2000:]}")


def disk_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def measure(settings: Settings, data_dir: Path, log: Path, env: dict[str, str], timeout_s: float) -> dict[str, float]:
    worker = WorkerProcess(settings.model_copy(update={"data_dir": data_dir}), log, env).start()
    try:
        seconds = ready_after(worker, timeout_s)
        assert worker.pid is not None
        return {"seconds": seconds, "rss": pure.rss_bytes(worker.pid), "disk": disk_bytes(data_dir)}
    finally:
        worker.stop(timeout_s=60)


def bare_restore(settings: Settings, store: str, data_dir: Path, log: Path, env: dict[str, str],
                 timeout_s: float) -> dict[str, float]:
    """The bare Faust agent of ``bench.faust_bare`` on a filled table: seconds until its table is restored."""
    ready = log.with_suffix(".ready")
    child = ChildProcess(log)
    child.spawn([sys.executable, "-m", "bench.faust_bare"], {
        **{k: v for k, v in os.environ.items() if not k.startswith("CHURNWATCH_")},
        **settings_env(settings.model_copy(update={"data_dir": data_dir})), **env,
        "BENCH_EXPECT": str(10**12), "BENCH_RESULT": str(log.with_suffix(".rate")), "BENCH_STORE": store,
        "BENCH_READY": str(ready)})
    began = time.monotonic()
    try:
        if not on_broker.appeared(ready, child, timeout_s):
            raise RuntimeError(f"the bare agent did not restore: {child.log_text()[-2000:]}")
        assert child.pid is not None
        return {"seconds": time.monotonic() - began, "rss": pure.rss_bytes(child.pid), "disk": disk_bytes(data_dir)}
    finally:
        child.stop(timeout_s=60)
        ready.unlink(missing_ok=True)


def show(start: str, got: dict[str, float], baseline: dict[str, float], customers: int) -> None:
    per_customer = (got["rss"] - baseline["rss"]) / customers
    print(f"  {start:<12} ready in {got['seconds']:7.1f} s; resident {got['rss'] / 2**20:,.0f} MiB "
          f"({per_customer:,.0f} bytes per customer beyond an empty worker); data directory "
          f"{got['disk'] / 2**20:,.1f} MiB", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench.restart")
    parser.add_argument("--broker", choices=("kafka", "embedded"), default="kafka")
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds a start may take")
    parser.add_argument("--bare", action="store_true",
                        help="also the bare Faust agent's table restored, in memory and (with rocksdict installed) "
                             "in Faust's on-disk store, first start and restart")
    parser.add_argument("--worker-env", action="append", default=[], metavar="NAME=VALUE",
                        help="an environment variable for the worker (e.g. one of Faust's own settings) to try")
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.worker_env)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    templates = state_templates()
    print(f"restart with {args.customers:,} customers' state on {args.broker}; table values "
          f"{pure.state_bytes(templates):,.0f} bytes on average", flush=True)
    with tempfile.TemporaryDirectory() as tmp, on_broker.started(args.broker, Path(tmp)) as (servers, _, tuning, __):
        empty = on_broker.fresh_settings(servers, Path(tmp) / "empty")
        asyncio.run(on_broker.publish(empty, []))
        baseline = measure(empty, Path(tmp) / "empty", Path(tmp) / "empty.log", tuning, args.timeout)
        print(f"  an empty worker: ready in {baseline['seconds']:.1f} s, {baseline['rss'] / 2**20:,.0f} MiB resident",
              flush=True)
        settings = on_broker.fresh_settings(servers, Path(tmp) / "full")
        asyncio.run(on_broker.publish(settings, []))
        began = time.monotonic()
        asyncio.run(fill_changelog(settings, args.customers, templates))
        print(f"  changelog filled in {time.monotonic() - began:.0f} s", flush=True)
        for store in ("memory://", "rocksdb://"):
            print(f"the worker, store {store}:", flush=True)
            for start in ("first start", "restart"):
                got = measure(settings.model_copy(update={"store": store}), Path(tmp) / f"data-{store[:4]}",
                              Path(tmp) / f"{store[:4]}-{start[:5]}.log", {**tuning, **extra}, args.timeout)
                show(start, got, baseline, args.customers)
        if args.bare:
            asyncio.run(fill_changelog(settings, args.customers, templates, table=BARE_TABLE))
            # rocksdb:// runs on rocksdict
            stores = ["memory://"] + (["rocksdb://"] if importlib.util.find_spec("rocksdict") else [])
            for store in stores:
                print(f"the bare Faust agent's table, store {store}:", flush=True)
                for start in ("first start", "restart"):
                    got = bare_restore(settings, store, Path(tmp) / f"bare-{store[:4]}",
                                       Path(tmp) / f"bare-{store[:4]}-{start[:5]}.log", {**tuning, **extra},
                                       args.timeout)
                    show(start, got, baseline, args.customers)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
