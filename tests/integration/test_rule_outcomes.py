"""Alert outcomes, live: a worker judges its alerts by what customers did next, and keeps the numbers across a restart.

One customer is warned (a failed payment) and cancels ten days later: a hit
with a ten-day lead; another cancels unwarned; a third is warned and stays.
All three are active every day until then, so no other rule speaks.
``GET /rules`` and the metrics must say so, and a worker restarted after
being down longer than the horizon must still say so, and judge the third
customer's alert a miss once the horizon has passed, though it never saw
that customer's events.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from churnwatch.dev.worker_process import WorkerProcess
from churnwatch.kafka.topics import ensure_topics
from churnwatch.schemas.events import Event
from churnwatch.testing.events import day, failed, login, subscription
from tests.support.brokers import Broker
from tests.support.worker import http_get, make_settings, metric_total, publish_events, wait_for

pytestmark = pytest.mark.integration


def test_a_worker_judges_its_alerts_and_keeps_the_numbers_across_a_restart(broker: Broker, tmp_path: Path) -> None:
    settings = make_settings(broker, tmp_path / "data")
    asyncio.run(ensure_topics(settings))
    events: list[Event] = [
        subscription(day(1), 100.0, action="started", customer="warned"),
        subscription(day(1), 50.0, action="started", customer="unwarned"),
        login(day(2), customer="warned"),
        failed(day(10), customer="warned"),
        subscription(day(1), 80.0, action="started", customer="stayer"),
        failed(day(12), customer="stayer", invoice="inv-9"),
        subscription(day(20), 0.0, action="cancelled", customer="warned"),
        subscription(day(21), 0.0, action="cancelled", customer="unwarned"),
        # Active every day until they leave (the stayer to day 21): no onboarding or disengagement alert.
        *(login(day(d + 0.5), customer=c) for c, last in (("warned", 19), ("unwarned", 20), ("stayer", 21))
          for d in range(1, last + 1)),
    ]

    def rules() -> dict | None:
        status, body = http_get(settings, "/rules")
        report = json.loads(body) if status == 200 else None
        return report if report and report["churners"] == 2 else None

    with WorkerProcess(settings, tmp_path / "first.log", broker.worker_env) as first:
        publish_events(settings, events)
        report = wait_for(rules)
        assert report, (http_get(settings, "/rules"), first.log_text()[-3000:])
        assert report["rules"]["payment_failure"] == {
            "alerts_judged": 1, "hits": 1, "misses": 0, "after_the_fact": 0, "precision": 1.0,
            "churners_warned": 1, "recall": 0.5, "median_lead_days": 10.0}
        assert (report["churners_warned"], report["recall"], report["horizon_days"]) == (1, 0.5, 30)
        assert metric_total(settings, "churnwatch_churners") == 2
        assert metric_total(settings, "churnwatch_rule_outcomes") == 1  # the one hit, over every rule and verdict
    # While no worker runs, time moves on past the stayer's horizon (day 12 + 30): another customer's events.
    publish_events(settings, [login(day(d), customer="keeper") for d in range(22, 50)])
    with WorkerProcess(settings, tmp_path / "second.log", broker.worker_env) as second:
        missed = wait_for(lambda: (r := json.loads(http_get(settings, "/rules")[1]))["rules"]["payment_failure"]
                          ["misses"] == 1 and r)
        assert missed, (http_get(settings, "/rules"), second.log_text()[-3000:])
        assert missed["rules"]["payment_failure"] == {
            "alerts_judged": 2, "hits": 1, "misses": 1, "after_the_fact": 0, "precision": 0.5,
            "churners_warned": 1, "recall": 0.5, "median_lead_days": 10.0}
        assert missed["churners"] == 2  # each counted once: the saved board, then the topic after it
