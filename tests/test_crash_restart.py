"""Crash and restart: the worker is SIGKILLed in the middle of the stream and started again.

The promise (README, "Guarantees"): at-least-once processing, state updates
idempotent by event id, deterministic alert ids. So after the crash every
expected alert arrives, a repeat is a copy of an alert already sent (a
message the killed worker had processed but not committed), and the
recovered table holds the same facts as an uninterrupted run (the replay).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from rules import CustomerState, RulesConfig
from schemas.alert import Alert
from stream_app.app import STATE_TABLE
from stream_app.publisher import EventPublisher
from stream_app.replay import Replay
from stream_app.topic_reader import collect
from stream_app.topics import ensure_topics
from stream_app.worker_process import WorkerProcess
from tests.conftest import Broker, make_settings
from tests.story import episode_changes, story

pytestmark = pytest.mark.integration

WAIT_S = 120.0


def test_a_killed_worker_restarts_and_loses_nothing(broker: Broker, tmp_path: Path) -> None:
    settings = make_settings(broker, tmp_path / "data")
    events = story()
    expected: list[Alert] = []
    uninterrupted = Replay(RulesConfig(), expected.append)
    for event in events:
        uninterrupted.feed(event.model_dump_json())
    uninterrupted.finish()
    asyncio.run(ensure_topics(settings))

    async def publish() -> None:
        async with EventPublisher(settings) as publisher:
            for event in events:
                await publisher.publish(event)

    def read_alerts(done, until) -> list[Alert]:  # type: ignore[no-untyped-def]
        records = asyncio.run(collect(settings.bootstrap_servers, settings.topic_alerts,
                                      lambda rs: done([Alert.model_validate_json(r.value) for r in rs]),
                                      WAIT_S, until=until))
        return [Alert.model_validate_json(r.value) for r in records]

    first = WorkerProcess(settings, tmp_path / "first.log", broker.worker_env).start()
    try:
        asyncio.run(publish())
        # The first alert is out: the worker is in the middle of the stream.
        before = read_alerts(lambda alerts: len(alerts) >= 1, first.dead)
        assert before, first.log_text()[-3000:]
        assert first.kill() == -9
    finally:
        first.stop()
    assert len(episode_changes(before)) < len(episode_changes(expected)), "killed too late to test anything"

    with WorkerProcess(settings, tmp_path / "second.log", broker.worker_env) as second:
        alerts = read_alerts(lambda alerts: episode_changes(alerts) >= episode_changes(expected), second.dead)
        assert episode_changes(alerts) == episode_changes(expected), second.log_text()[-3000:]
        # A repeat is the same alert again, sent once by each worker at most.
        copies = Counter((a.alert_id, a.status, a.sequence) for a in alerts)
        assert max(copies.values()) <= 2, copies.most_common(3)
        for alert in alerts:
            first_seen = next(a for a in alerts if (a.alert_id, a.status, a.sequence)
                              == (alert.alert_id, alert.status, alert.sequence))
            assert alert.severity == first_seen.severity and alert.customer_id == first_seen.customer_id

        # The table after recovery and the rest of the stream: the replay's facts, customer by customer.
        want = {c: s.facts() for c, s in uninterrupted.states.items()}
        changelog = f"{settings.app_id}-{STATE_TABLE}-changelog"

        def latest(records) -> dict[str, dict[str, object]]:  # type: ignore[no-untyped-def]
            states = {}
            for record in records:
                state = CustomerState.from_bytes(record.value)
                states[state.customer_id] = state.facts()
            return states

        records = asyncio.run(collect(settings.bootstrap_servers, changelog,
                                      lambda rs: latest(rs) == want, WAIT_S, until=second.dead))
        got = latest(records)
        assert set(got) == set(want)
        for customer in want:
            assert got[customer] == want[customer], customer
        assert second.alive(), second.log_text()[-3000:]
