"""A worker started by hand on ``churnwatch broker``, as the README suggests, is safe by itself.

No tuning in its environment: it recognises the embedded broker by its
cluster id and applies the settings that broker needs. It is stopped and
started again; then one more event per customer must land on the newest
state of each, so the table after the restart holds exactly the replay's facts.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from churnwatch.dev.embedded_broker import free_port, kafka_answers
from churnwatch.kafka.topics import ensure_topics
from churnwatch.dev.worker_process import WorkerProcess
from tests.support.brokers import Broker
from tests.support.states import changelog_states, replayed_facts
from tests.support.worker import events_applied, http_get, make_settings, publish_events, wait_for
from churnwatch.testing.events import login
from tests.support.story import story

pytestmark = pytest.mark.integration

WAIT_S = 120.0


def test_a_hand_started_worker_on_the_embedded_broker_restarts_with_every_state(tmp_path: Path) -> None:
    port = free_port()
    broker = subprocess.Popen([sys.executable, "-m", "churnwatch", "broker", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        assert wait_for(lambda: kafka_answers("127.0.0.1", port), 30)
        settings = make_settings(Broker(f"127.0.0.1:{port}", "embedded", {}), tmp_path / "data")
        asyncio.run(ensure_topics(settings))
        first_part = story()
        last = max(e.occurred_at for e in first_part)
        second_part = [login(last + timedelta(hours=1), customer)
                       for customer in sorted({e.customer_id for e in first_part})]
        with WorkerProcess(settings, tmp_path / "first.log") as first:  # no CHURNWATCH_* tuning
            publish_events(settings, first_part)
            assert wait_for(lambda: events_applied(settings) == len(first_part), WAIT_S), first.log_text()[-3000:]
            assert "the broker is the embedded Tansu broker" in first.log_text()
        assert first.process is not None and first.process.returncode == 0, first.log_text()[-3000:]

        started = time.monotonic()
        with WorkerProcess(settings, tmp_path / "second.log") as second:
            assert wait_for(lambda: http_get(settings, "/readyz")[0] == 200, WAIT_S), second.log_text()[-3000:]
            ready_s = time.monotonic() - started
            publish_events(settings, second_part)
            want = replayed_facts(first_part + second_part)
            got = changelog_states(settings, want, second.dead, WAIT_S)
            assert got == want, sorted(c for c in want if got.get(c) != want[c])
        # A restart no longer waits for the first worker's session (it took 113 s with the defaults).
        assert ready_s < 60, ready_s
    finally:
        broker.terminate()
        broker.wait(timeout=30)
