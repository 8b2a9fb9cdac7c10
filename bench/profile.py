"""Where a worker's time per message goes: a sampling profile of the worker and of the bare Faust agent.

``make profile`` (or ``python -m bench.profile --broker kafka``) publishes the
bench's mix, starts ``churnwatch worker`` and, on its own consumer group, the
bare agent of (b) (parse only), and samples each for a while with py-spy
while they consume. Each sample is put down to the first frame, from the
innermost outwards, that belongs to a known part (our core, our shell,
pydantic, Faust and mode, aiokafka, the asyncio loop, ...), and the shares
are turned into CPU microseconds per message with the process's own CPU
time over the same stretch. "In the handler" is the share of samples whose
stack passes through the worker's per-message handler: the rest is the
framework's cost around it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from bench import broker as on_broker
from bench.pure import cpu_seconds
from churnwatch.dev.child_process import ChildProcess
from churnwatch.dev.worker_process import WorkerProcess, settings_env
from churnwatch.settings import Settings

# (part, what a frame's file path contains); the first match from the innermost frame names the sample.
PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (  # py-spy names a frame "function (path:line)"
    ("churnwatch core (rules, schemas)", ("(rules/", "(schemas/")),
    ("churnwatch model", ("(stream_app/model/",)),
    ("churnwatch shell", ("(stream_app/",)),
    ("pydantic", ("(pydantic/", "(pydantic_core/")),
    ("json, zlib", ("(json/", "zlib")),
    ("Faust", ("(faust/",)),
    ("mode (Faust's services)", ("(mode/",)),
    ("aiokafka (client, protocol)", ("(aiokafka/", "(kafka/")),
    ("asyncio event loop", ("(asyncio/", "uvloop", "(selectors.py")),
)
HANDLER = "(stream_app/worker/processor.py"  # a stack through the Processor is inside the per-message handler


def part_of(frames: list[str]) -> str:
    for frame in reversed(frames):  # innermost last in py-spy's raw format
        for part, marks in PARTS:
            if any(mark in frame for mark in marks):
                return part
    return "other (stdlib, interpreter)"


def sample(pid: int, seconds: float, out: Path) -> tuple[Counter[str], int, float]:
    """py-spy over ``pid``: samples by part, samples in the handler, CPU seconds of the process meanwhile."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    before = cpu_seconds(pid)
    subprocess.run([spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "200",
                    "--nonblocking", "--format", "raw", "--output", str(out)],
                   check=True, capture_output=True, timeout=seconds + 60)
    used = cpu_seconds(pid) - before
    parts: Counter[str] = Counter()
    in_handler = 0
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        parts[part_of(frames)] += int(count)
        if any(HANDLER in f for f in frames):
            in_handler += int(count)
    return parts, in_handler, used


def _consumed(settings: Settings) -> float:
    """Messages the worker has taken so far (0 while its HTTP port is not up yet)."""
    try:
        return on_broker.processed(settings)
    except OSError:
        return 0.0


def _wait(check: Callable[[], object], what: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start consuming within {timeout_s:.0f} s")
        time.sleep(0.2)


def report(name: str, parts: Counter[str], in_handler: int | None, cpu_us_per_message: float) -> None:
    total = sum(parts.values()) or 1
    print(f"{name}: {total:,} samples, {cpu_us_per_message:,.0f} us of CPU per message")
    for part, n in parts.most_common():
        print(f"  {part:<36} {n / total:6.1%}  {n / total * cpu_us_per_message:7.0f} us")
    if in_handler is not None:
        print(f"  {'in the per-message handler':<36} {in_handler / total:6.1%}  "
              f"{in_handler / total * cpu_us_per_message:7.0f} us")


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench.profile")
    parser.add_argument("--broker", choices=("embedded", "kafka"), default="embedded")
    parser.add_argument("--events", type=int, default=150_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, on_broker.started(args.broker, Path(tmp)) as (servers, _, tuning, _o):
        settings = on_broker.fresh_settings(servers, Path(tmp) / "data")
        asyncio.run(on_broker.publish(settings, on_broker.realistic_mix(args.events, 100_000)))
        print(f"published {args.events:,} events to the {args.broker} broker; sampling each for {args.seconds:.0f} s")

        with WorkerProcess(settings, Path(tmp) / "worker.log", tuning) as worker:
            _wait(lambda: _consumed(settings), "the worker")
            first = _consumed(settings)
            assert worker.pid is not None
            parts, in_handler, used = sample(worker.pid, args.seconds, Path(tmp) / "worker.txt")
            done = _consumed(settings) - first
            report("churnwatch worker", parts, in_handler, used / max(done, 1) * 1e6)

        bare = ChildProcess(Path(tmp) / "bare.log")
        marker = Path(tmp) / "never"
        bare_settings = settings.model_copy(update={"app_id": f"{settings.app_id}-bare"})
        bare.spawn([sys.executable, "-m", "bench.faust_bare"], {
            **{k: v for k, v in os.environ.items() if not k.startswith("CHURNWATCH_")},
            **settings_env(bare_settings), **tuning, "BENCH_EXPECT": str(10 * args.events),
            "BENCH_RESULT": str(marker), "BENCH_TABLE": "0", "BENCH_COUNT_FILE": str(Path(tmp) / "count")})
        try:
            count = Path(tmp) / "count"
            _wait(count.exists, "the bare agent")
            first = int(count.read_text() or 0)
            assert bare.pid is not None
            parts, _, used = sample(bare.pid, args.seconds, Path(tmp) / "bare.txt")
            done = int(count.read_text() or 0) - first
            report("bare Faust agent (parse only)", parts, None, used / max(done, 1) * 1e6)
        finally:
            bare.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
