"""The model's alerts are the same live as in a replay: two workers on a broker, and the replay of their input.

Each worker learns from the labels topic by event-time week, once every
partition's owner has said that week is done, and scores a snapshot with the
model of its week; the replay makes the same versions on its own clock. So
the ``model_risk`` alerts (ids and whether they fire or clear) must be
those of the replay, however the customers are split between the workers
and whenever each read what. A permissive gate and a probability threshold
make the model speak on a small simulated base.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import ConsumerRecord

from churnwatch.dev.embedded_broker import free_port
from churnwatch.dev.worker_process import WorkerProcess
from churnwatch.kafka.reader import collect, follow
from churnwatch.kafka.topics import ensure_topics
from churnwatch.model import ChurnModel
from churnwatch.offline.replay import Replay
from churnwatch.offline.simulator import simulate
from churnwatch.rules.config import load_rules
from churnwatch.schemas.alert import Alert, RuleName
from churnwatch.schemas.events import Event
from churnwatch.testing.events import login
from tests.support.brokers import Broker
from tests.support.story import episode_changes
from tests.support.worker import make_settings, publish_events

pytestmark = pytest.mark.integration
WAIT_S = 240.0
QUIET_S = 5.0  # once the replay's alerts are in: how long no more may come
RULES = """
[model]
selection = "threshold"
threshold = 0.5
clear_below = 0.25
min_labels = 30
auc_floor = 0.0
gate_min_positives = 1
gate_window = 200
"""


def fenced(events: list[Event], partitions: int) -> list[Event]:
    """The events, then a login two days after the last on every partition, so every partition's clock
    passes the last day of the base (a partition whose customers went quiet earlier would hold it back)."""
    end = max(e.occurred_at for e in events) + timedelta(days=2)
    partitioner = DefaultPartitioner()
    fences: dict[int, str] = {}
    for n in range(1000):
        customer = f"fence-{n}"
        fences.setdefault(partitioner(customer.encode(), list(range(partitions)), list(range(partitions))),
                          customer)
        if len(fences) == partitions:
            break
    return [*events, *(login(end, customer) for customer in fences.values())]


async def everything(bootstrap_servers: str, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    return [r async for r in follow(bootstrap_servers, topic, QUIET_S)]


def model_alerts(alerts: list[Alert]) -> set[tuple[str, str]]:
    return episode_changes([a for a in alerts if a.rule == RuleName.MODEL_RISK
                            and not a.customer_id.startswith("fence-")])


def test_two_workers_send_the_model_alerts_of_the_replay(broker: Broker, tmp_path: Path) -> None:
    raw, _ = simulate(40, 120, seed=3)
    replayed, expected = live_against_the_replay(broker, tmp_path, raw)
    assert len(expected) >= 10, "the model must speak for the test to show anything"


def test_workers_started_from_a_backtests_model_send_its_model_alerts_from_the_first_week(
        broker: Broker, tmp_path: Path) -> None:
    """The deployment path (docs/model.md): the history's model saved, every worker started from it
    (``CHURNWATCH_MODEL_START``), the replay of what follows started from it too."""
    raw, _ = simulate(40, 240, seed=3)
    split = datetime(2026, 5, 31, tzinfo=UTC)  # the simulator's usage starts 2026-01-01
    config = load_rules(rules_file(tmp_path))
    history = Replay(config, lambda alert: None)
    for event in sorted((e for e in raw if e.occurred_at < split), key=lambda e: e.occurred_at):
        history.feed_event(event)
    history.finish()
    start = tmp_path / "start.pkl"
    history.model.save(start)
    replayed, expected = live_against_the_replay(broker, tmp_path, [e for e in raw if e.occurred_at >= split],
                                                 start)
    firing = sorted(a.triggered_at for a in replayed if a.rule == RuleName.MODEL_RISK and a.sequence == 0)
    assert firing and firing[0] < split + timedelta(days=14), firing[:3]  # not a horizon after warming up


def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "rules.toml"
    path.write_text(RULES)
    return path


def live_against_the_replay(broker: Broker, tmp_path: Path, raw: list[Event],
                            start: Path | None = None) -> tuple[list[Alert], set[tuple[str, str]]]:
    """Two workers (started from the model saved at ``start``, if given) on ``raw`` published before they
    start, against its replay: the same ``model_risk`` alerts, and nothing more. Returns the replay's
    alerts and its model alert changes."""
    first = make_settings(broker, tmp_path / "one", rules_file=rules_file(tmp_path), model_start=start)
    second = first.model_copy(update={"data_dir": tmp_path / "two", "web_port": free_port()})
    events = fenced(sorted(raw, key=lambda e: e.occurred_at), first.partitions)
    replayed: list[Alert] = []
    config = load_rules(first.rules_file)
    replay = Replay(config, replayed.append,
                    model=None if start is None else ChurnModel.start_from(start, config.model))
    for event in events:
        replay.feed_event(event)
    replay.finish()
    expected = model_alerts(replayed)
    assert expected, "the model must speak for the test to show anything"
    asyncio.run(ensure_topics(first))
    # Published before the workers start: the same input. (Published while they run, a partition the
    # publisher has not reached yet looks caught up, the workers' clocks pass it, and its events come
    # late: scored by a later model, as a late event is live; docs/model.md.)
    publish_events(first, events)
    workers = [WorkerProcess(s, tmp_path / f"{n}.log", broker.worker_env).start()
               for n, s in enumerate((first, second))]
    try:
        asyncio.run(collect(
            first.bootstrap_servers, first.topic_alerts,
            lambda rs: model_alerts([Alert.model_validate_json(r.value) for r in rs]) >= expected,
            WAIT_S, until=lambda: not all(w.alive() for w in workers)))
        records = asyncio.run(everything(first.bootstrap_servers, first.topic_alerts))  # and nothing more?
    finally:
        codes = [w.stop() for w in workers]
    assert codes == [0, 0], [w.log_text()[-2000:] for w in workers]
    received = [Alert.model_validate_json(r.value) for r in records]
    sent = model_alerts(received)

    def described(changes: set[tuple[str, str]], alerts: list[Alert]) -> list[str]:
        return sorted(f"{a.customer_id} {a.status.value} {a.triggered_at:%Y-%m-%d %H:%M} {a.reasons[0]}"
                      for a in alerts if (a.alert_id, a.status.value) in changes and a.rule == RuleName.MODEL_RISK)

    assert sent == expected, (f"only live: {described(sent - expected, received)}\n"
                              f"only the replay: {described(expected - sent, replayed)}")
    return replayed, expected
