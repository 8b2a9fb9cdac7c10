"""The broker goes away for 30 s and comes back: the worker carries on by itself.

The outage is a paused broker process (SIGSTOP, then SIGCONT; the JVM's pid
for Apache Kafka): connections stay open but nothing answers, as with a
broker host that hangs or a network partition. The embedded broker keeps its
data in memory only, so a restart would be a new, empty cluster (topics,
offsets and the state changelog gone); a pause keeps them, like a real
cluster whose brokers come back. The test starts a broker of its own, of the
kind the run uses (``TEST_BROKER``).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from churnwatch.schemas.events import Event
from tests.support.brokers import chosen_broker, own_broker
from tests.support.worker import events_applied, publish_events, running_worker, wait_for
from churnwatch.testing.events import day, login, usage

pytestmark = [pytest.mark.integration, pytest.mark.broker]  # on a broker of its own

OUTAGE_S = 30.0


def _events(first_day: int, customers: int) -> list[Event]:
    return [e for n in range(customers) for e in (login(day(first_day), f"outage-{n}"),
                                                  usage(day(first_day), customer=f"outage-{n}"))]


def test_the_worker_goes_on_after_a_30_second_broker_outage(tmp_path: Path) -> None:
    with own_broker(chosen_broker(), tmp_path / "broker") as broker:
        before, after = _events(0, 20), _events(1, 20)
        # running_worker also checks that the worker stops cleanly at the end.
        with running_worker(broker, tmp_path) as (settings, worker):
            publish_events(settings, before)
            assert wait_for(lambda: events_applied(settings) == len(before), 120), worker.log_text()[-3000:]

            assert broker.pid is not None
            os.kill(broker.pid, signal.SIGSTOP)
            try:
                # The outage itself: the worker must live through it.
                deadline = time.monotonic() + OUTAGE_S
                while time.monotonic() < deadline:
                    assert worker.alive(), worker.log_text()[-3000:]
                    time.sleep(0.5)
            finally:
                os.kill(broker.pid, signal.SIGCONT)

            publish_events(settings, after)
            done = wait_for(lambda: events_applied(settings) == len(before) + len(after), 180)
            assert done, (events_applied(settings), worker.log_text()[-4000:])
            assert worker.alive()
