"""`churnwatch demo` (what `make demo` runs) end to end, as a new user runs it, but small."""

from __future__ import annotations

import os
import re
import subprocess
import sys

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
    pids = [int(p) for p in re.findall(r"pid (\d+)", out)]
    assert len(pids) == 2, out  # the broker's and the worker's
    assert all(_gone(pid) for pid in pids), out
