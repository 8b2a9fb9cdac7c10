"""A data-protection request on a real broker: ``churnwatch forget`` publishes it, the worker forgets the customer.

The customer's open alert is closed saying why, the lookup knows only that
they were erased, the changelog's newest value of the customer holds no fact
(so compaction removes the older ones), and an old event published after
the request is refused rather than folded into a new state.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import ConsumerRecord

from churnwatch.dev.worker_process import settings_env
from churnwatch.kafka.reader import collect
from churnwatch.rules.state import CustomerState
from churnwatch.schemas.alert import Alert
from churnwatch.schemas.events import Event, TicketEvent, UsageEvent
from churnwatch.settings import Settings
from churnwatch.worker.app import STATE_TABLE
from tests.support.brokers import Broker
from tests.support.worker import http_get, metric_total, publish_events, running_worker, wait_for

pytestmark = pytest.mark.integration

WAIT_S = 120.0
# The story ends the day before the request (which ``churnwatch forget`` makes as of now), so the customer's
# alert is still open when it comes.
START = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=25)


def _story() -> list[Event]:
    """Two customers log in daily; one of them opens an urgent ticket asking to cancel on day 20."""
    events: list[Event] = [UsageEvent(event_id=f"{c}-{d}", customer_id=c, occurred_at=START + timedelta(days=d),
                                      kind="login") for d in range(25) for c in ("c-1", "c-2")]
    events.append(TicketEvent(event_id="t-1", customer_id="c-1", occurred_at=START + timedelta(days=20, hours=1),
                              ticket_id="T-1", action="opened", priority="urgent",
                              category="cancellation_request", sentiment=-0.9))
    return sorted(events, key=lambda e: e.occurred_at)


def _alerts(settings: Settings, done: Callable[[list[Alert]], bool]) -> list[Alert]:
    records = asyncio.run(collect(settings.bootstrap_servers, settings.topic_alerts,
                                  lambda rs: done([Alert.model_validate_json(r.value) for r in rs]), WAIT_S))
    return [Alert.model_validate_json(r.value) for r in records]


def _newest_value(settings: Settings, customer_id: str) -> CustomerState | None:
    """The customer's newest value on the table's changelog, read until it is the erasure's marker."""
    def newest(records: list[ConsumerRecord[bytes, bytes]]) -> CustomerState | None:
        mine = [r.value for r in records if r.key == json.dumps(customer_id).encode() and r.value is not None]
        return CustomerState.from_bytes(mine[-1]) if mine else None

    def forgotten(records: list[ConsumerRecord[bytes, bytes]]) -> bool:
        state = newest(records)
        return state is not None and state.forgotten

    changelog = f"{settings.app_id}-{STATE_TABLE}-changelog"
    return newest(asyncio.run(collect(settings.bootstrap_servers, changelog, forgotten, WAIT_S)))


def _refused(settings: Settings) -> float:
    """Events refused because their customer was erased after them, by the worker's metric."""
    return metric_total(settings, "churnwatch_events_consumed_total", only={"outcome": "erased"})


def test_a_forgotten_customer_is_erased_and_stays_so(broker: Broker, tmp_path: Path) -> None:
    with running_worker(broker, tmp_path) as (settings, worker):
        publish_events(settings, _story())
        opened = _alerts(settings, lambda alerts: any(a.customer_id == "c-1" for a in alerts))
        assert any(a.customer_id == "c-1" and a.status.value == "firing" for a in opened), worker.log_text()[-2000:]

        env = {**{k: v for k, v in os.environ.items() if not k.startswith("CHURNWATCH_")}, **settings_env(settings)}
        said = subprocess.run([sys.executable, "-m", "churnwatch", "forget", "c-1", "--case-id", "DPR-17"],
                              capture_output=True, text=True, env=env, timeout=60)
        assert said.returncode == 0, said.stderr
        assert said.stdout.startswith("erasure of c-1 requested as of "), said.stdout

        closed = _alerts(settings, lambda alerts: any(a.customer_id == "c-1" and a.status.value == "resolved"
                                                      for a in alerts))
        resolved = [a for a in closed if a.customer_id == "c-1" and a.status.value == "resolved"]
        assert resolved and resolved[0].reasons[0].startswith("Closed: the customer's data was erased on request")

        def erased() -> dict[str, object] | None:
            status, body = http_get(settings, "/customers/c-1")
            answer = json.loads(body) if status == 200 else {}
            return answer if "erased_at" in answer else None

        answer = wait_for(erased, WAIT_S)
        assert answer is not None and set(answer) == {"customer_id", "as_of", "erased_at"}, answer

        # An old event published after the request: refused, counted, no new state made of it.
        publish_events(settings, [UsageEvent(event_id="c-1-late", customer_id="c-1",
                                             occurred_at=START + timedelta(days=3), kind="login")])
        assert wait_for(lambda: _refused(settings) == 1, WAIT_S), worker.log_text()[-2000:]
        assert json.loads(http_get(settings, "/customers/c-1")[1]).keys() == answer.keys()

        newest = _newest_value(settings, "c-1")
        assert newest is not None and newest.forgotten, newest
        assert newest.activity == {} and newest.tickets_opened == () and newest.recent_event_ids.as_dict() == {}
