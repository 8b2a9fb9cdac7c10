"""`churnwatch demo` (what `make demo` runs) end to end, as a new user runs it."""

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


def test_demo_prints_alerts_and_leaves_nothing_running() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHURNWATCH_")}
    result = subprocess.run(
        [sys.executable, "-m", "stream_app", "demo", "--timeout", "90"],
        capture_output=True, text=True, timeout=180, env=env,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert re.search(r"FIRING +(high|critical) .* acme +disengagement", out), out
    assert re.search(r"RESOLVED .* globex +payment_failure", out), out
    found = re.search(r"(\d+) of the (\d+) episode openings and resolutions", out)
    assert found and found.group(1) == found.group(2), out
    pids = [int(p) for p in re.findall(r"pid (\d+)", out)]
    assert len(pids) == 2, out  # the broker's and the worker's
    assert all(_gone(pid) for pid in pids), out
