"""`churnwatch demo` (what `make demo` runs) end to end, as a new user runs it, but small."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie still answers kill(0); its state in /proc says whether it runs.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(")")[1].split()[0] == "Z"


def test_a_short_demo_reports_alerts_and_a_scorecard_and_leaves_nothing_running() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHURNWATCH_")}
    result = subprocess.run(
        [sys.executable, "-m", "churnwatch", "demo", "--customers", "60", "--days", "90", "--speed", "15"],
        capture_output=True, text=True, timeout=300, env=env,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert re.search(r"FIRING +(warning|high|critical) +p\d+ +cust-\d{6}", out), out
    assert "scorecard: 60 customers" in out, out
    any_rule = re.search(r"any rule +(\d+) +(\d+) +(\d+) +([\d.]+)%", out)
    assert any_rule and int(any_rule.group(1)) > 0, out
    read = re.search(r"(\d+) alerts read back .* worker read (\d+) events", out)
    assert read and int(read.group(1)) > 0, out
    # The open alerts at the end (GET /alerts): a (customer, rule) whose last message in the feed fired.
    last: dict[tuple[str, str], str] = {}
    for status, customer, rule in re.findall(r"^\S+ (FIRING|RESOLVED) +\S+ +p\d+ +(cust-\d{6}) +(\w+)", out, re.M):
        last[(customer, rule)] = status
    still_open = re.search(r"^  (\d+) open \(", out, re.M)
    assert still_open and int(still_open.group(1)) == sum(s == "FIRING" for s in last.values()), out
    pids = [int(p) for p in re.findall(r"pid (\d+)", out)]
    assert len(pids) == 2, out  # the broker's and the worker's
    assert all(_gone(pid) for pid in pids), out


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_stops_the_demo_with_its_broker_and_worker_in_one_line(signum: signal.Signals) -> None:
    """What ``timeout``, a CI limit or a closed terminal does: nothing left running, no traceback, no folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHURNWATCH_")}
    folders = set(Path(tempfile.gettempdir()).glob("churnwatch-broker-*"))
    demo = subprocess.Popen([sys.executable, "-m", "churnwatch", "demo", "--customers", "60", "--days", "90"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert demo.stdout is not None and demo.stderr is not None
    try:
        seen = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any(line.startswith("worker started") for line in seen):
            line = demo.stdout.readline()
            assert line, (seen, demo.stderr.read())
            seen.append(line)
        pids = [int(p) for p in re.findall(r"pid (\d+)", "".join(seen))]
        assert len(pids) == 2, seen  # the broker's and the worker's
        demo.send_signal(signum)
        code = demo.wait(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
    err = demo.stderr.read()
    assert code == 128 + signum, err
    assert err == f"churnwatch: demo stopped ({signum.name}); its broker and worker are stopped\n"
    deadline = time.monotonic() + 10
    while not all(_gone(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(_gone(pid) for pid in pids)
    assert set(Path(tempfile.gettempdir()).glob("churnwatch-broker-*")) <= folders
