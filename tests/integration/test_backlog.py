"""A backlog: every event published before the workers start, as after an outage or at a first deployment.

The workers then read the four input topics at their own speeds (a small
topic is read to its end while the usage topic is far behind); the merge by
event time must still hand each customer's events to the core in the
replay's order. So every alert (``model_risk`` included) and every
customer's state must be the replay's. The same code as ``make chaos``
(``bench.chaos``), on the session's broker, without faults.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.chaos import GivenBroker, Plan, run_chaos
from tests.support.brokers import Broker

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def test_two_workers_reading_a_backlog_send_the_replays_alerts_and_keep_its_states(broker: Broker,
                                                                                      tmp_path: Path) -> None:
    plan = Plan(customers=40, days=75, seed=11, workers=2, partitions=4, kill_every_s=None, broker_pause_s=0.0,
                backlog=True, settle_s=240.0)
    said: list[str] = []
    outcome = run_chaos(plan, tmp_path, said.append, GivenBroker(broker.bootstrap_servers, broker.worker_env))
    assert outcome.expected > 50, outcome.line()  # the file exercises the rules
    assert outcome.clean, "\n".join([outcome.line(), *said[-5:], json.dumps(
        {"missing": outcome.missing[:10], "extra": outcome.extra[:10], "unlike": outcome.unlike[:10],
         "repeats unlike": outcome.repeats_unlike[:5], "states": outcome.states_unlike[:10],
         "problems": outcome.problems}, indent=1)])
