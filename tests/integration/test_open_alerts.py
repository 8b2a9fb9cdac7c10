"""``GET /alerts`` on a real broker: the open alerts, most urgent first, as sent; still right after a restart.

Two customers fail a payment; one pays the next day, so its episode opens
and resolves. Only the other's alert is open. While no worker runs a third
customer fails: a restarted worker reads on from the board it saved (the
three messages before are not read again) and shows both open alerts, the
more urgent first.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from churnwatch.dev.worker_process import WorkerProcess
from churnwatch.kafka.topics import ensure_topics
from churnwatch.schemas.events import Event
from churnwatch.testing.events import day, failed, login, subscription, succeeded
from tests.support.brokers import Broker
from tests.support.worker import http_get, make_settings, publish_events, wait_for

pytestmark = pytest.mark.integration


def _open(settings: object, query: str = "") -> dict | None:
    status, body = http_get(settings, f"/alerts{query}")
    return json.loads(body) if status == 200 else None


def test_open_alerts_are_the_unresolved_episodes_and_survive_a_restart(broker: Broker, tmp_path: Path) -> None:
    settings = make_settings(broker, tmp_path / "data")
    asyncio.run(ensure_topics(settings))
    first_events: list[Event] = []
    for customer in ("payer", "healed"):
        first_events.append(subscription(day(1), 100.0, action="started", customer=customer))
        first_events += [login(day(d + 0.5), customer=customer) for d in range(1, 21)]
    first_events += [failed(day(8), customer="healed", invoice="inv-h"), succeeded(day(9), customer="healed",
                                                                                   invoice="inv-h"),
                     failed(day(10), reason="card_expired", customer="payer")]

    def customers(answer: dict | None) -> list[str] | None:
        return None if answer is None else [a["customer_id"] for a in answer["alerts"]]

    with WorkerProcess(settings, tmp_path / "first.log", broker.worker_env) as first:
        publish_events(settings, sorted(first_events, key=lambda e: e.occurred_at))
        seen = wait_for(lambda: (a := _open(settings)) and customers(a) == ["payer"] and a)
        assert seen, (_open(settings), first.log_text()[-3000:])
        (shown,) = seen["alerts"]
        assert (shown["rule"], shown["status"], shown["severity"]) == ("payment_failure", "firing", "high")
        assert seen["open"] == 1 and seen["by_rule"] == {"payment_failure": 1}
        assert shown["reasons"] and shown["recommended_action"]
        assert _open(settings, "?rule=disengagement")["open"] == 0
        assert http_get(settings, "/alerts?severity=urgent")[0] == 400
    saved = json.loads(settings.open_alerts_file.read_text())
    assert sum(saved["read"].values()) == 3  # healed's opening and resolution, payer's opening
    publish_events(settings, [subscription(day(21.4), 50.0, action="started", customer="late"),
                              failed(day(21.5), customer="late", invoice="inv-l")])
    with WorkerProcess(settings, tmp_path / "second.log", broker.worker_env) as second:
        after = wait_for(lambda: customers(_open(settings)) == ["payer", "late"])
        assert after, (_open(settings), second.log_text()[-3000:])
        assert "alerts topic" not in second.log_text()  # no failure to follow it
