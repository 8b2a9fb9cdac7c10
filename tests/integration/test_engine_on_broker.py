"""The signal engine on a real broker: the sweep finds a silent customer, a
payment resolves its episode, and the worker agrees with the offline replay.

The story in tests/support/story.py is published once to a worker on the event clock; three steady
customers keep that clock moving after acme goes silent on day 40.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from churnwatch.rules import RulesConfig
from churnwatch.schemas.alert import Alert
from tests.support.story import START, episode_changes, expected_alerts, story
from churnwatch.kafka.publisher import EventPublisher
from churnwatch.settings import Settings
from churnwatch.kafka.reader import collect
from churnwatch.kafka.topics import ensure_topics
from churnwatch.dev.worker_process import WorkerProcess
from tests.support.brokers import Broker
from tests.support.worker import make_settings

pytestmark = pytest.mark.integration

WAIT_S = 120.0


@pytest.fixture(scope="module")
def outcome(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[Alert], list[Alert]]]:
    """(alerts the worker published, alerts the replay gives) for the demo story."""
    tmp: Path = tmp_path_factory.mktemp("engine")
    settings: Settings = make_settings(broker, tmp / "data")
    events = story()
    expected = expected_alerts(events, RulesConfig())
    asyncio.run(ensure_topics(settings))

    async def publish() -> None:
        async with EventPublisher(settings) as publisher:
            for event in events:
                await publisher.publish(event)

    with WorkerProcess(settings, tmp / "worker.log", broker.worker_env) as worker:
        asyncio.run(publish())
        records = asyncio.run(collect(
            settings.bootstrap_servers, settings.topic_alerts,
            lambda rs: episode_changes([Alert.model_validate_json(r.value) for r in rs])
            >= episode_changes(expected),
            WAIT_S, until=worker.dead,
        ))
        assert worker.alive(), worker.log_text()[-3000:]
    yield [Alert.model_validate_json(r.value) for r in records], expected


def test_a_silent_customer_gets_a_disengagement_alert_from_the_sweep(outcome: tuple[list[Alert], list[Alert]]) -> None:
    alerts, _ = outcome
    silent = [a for a in alerts if a.customer_id == "acme" and a.rule == "disengagement"]
    assert silent, alerts
    first = silent[0]
    assert first.status == "firing"
    # acme's last login was on day 40; nobody else went quiet.
    assert first.triggered_at > START + timedelta(days=55)
    assert first.evidence["last_login_at"].startswith((START + timedelta(days=40)).date().isoformat())
    assert {a.customer_id for a in alerts if a.rule == "disengagement"} == {"acme"}


def test_a_successful_payment_resolves_the_payment_episode(outcome: tuple[list[Alert], list[Alert]]) -> None:
    alerts, _ = outcome
    globex = [a for a in alerts if a.customer_id == "globex" and a.rule == "payment_failure"]
    assert [a.status for a in globex] == ["firing", "resolved"], globex
    assert globex[0].alert_id == globex[1].alert_id
    assert globex[0].severity == "high"  # card_expired
    assert "succeeded" in globex[1].reasons[0]


def test_the_worker_and_the_replay_emit_the_same_alert_ids(outcome: tuple[list[Alert], list[Alert]]) -> None:
    alerts, expected = outcome
    assert {a.alert_id for a in alerts} == {a.alert_id for a in expected}
    assert episode_changes(alerts) == episode_changes(expected)
    assert len(expected) >= 10  # the story exercises every rule
    assert {a.rule for a in expected} == {"disengagement", "payment_failure", "support_distress", "revenue_churn"}
