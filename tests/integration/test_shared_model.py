"""One model and one scoreboard for the group: labels and verdicts go through one topic, every worker reads all.

Two workers split a simulated base's customers; each publishes the labels
and alert verdicts of its own customers. Both must end with the same model,
the model that learning the topic once, in order, gives, and answer GET
/rules with the same numbers. A worker killed with
SIGKILL and restarted must end with that model too: no label learned twice,
none lost.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from churnwatch.dev.embedded_broker import free_port
from churnwatch.dev.worker_process import WorkerProcess
from churnwatch.kafka.reader import follow
from churnwatch.kafka.topics import ensure_topics
from churnwatch.model import ChurnModel
from churnwatch.offline.simulator import DEFAULT_START, simulate
from churnwatch.rules.config import ModelConfig
from churnwatch.settings import Settings
from churnwatch.worker.labels import learn_record, read_record
from tests.support.brokers import Broker
from tests.support.worker import events_consumed, http_get, make_settings, metric_total, publish_events, wait_for

pytestmark = pytest.mark.integration
WAIT_S = 180.0
EVENTS, _ = simulate(24, 60, seed=3)


def topic_model(settings: Settings, up_to: int | None = None) -> tuple[ChurnModel, int]:
    """A model that learned the labels topic (its first ``up_to`` records) once, in order; and how many it read."""
    async def read() -> list[tuple[int, bytes | None]]:
        return [(r.offset, r.value) async for r in follow(settings.bootstrap_servers, settings.topic_labels, 2.0)]

    model = ChurnModel(ModelConfig())
    records = asyncio.run(read())[:up_to]
    for offset, value in records:
        learn_record(model, offset, read_record(offset, value), settings.partitions)
    return model, len(records)


def assert_topic_model(model: ChurnModel, settings: Settings, settled_labels: int) -> None:
    """The model is what learning the topic in order gives, up to where it read (all of it, when it stopped)."""
    assert model.labels.total() >= settled_labels
    reference, read = topic_model(settings, model.labels_read)
    assert read == model.labels_read
    assert model.labels.total() == reference.labels.total()
    assert weights(model) == weights(reference)
    assert model.summary() == reference.summary()


def group_outcomes(settings: Settings) -> dict[str, object]:
    report = json.loads(http_get(settings, "/rules")[1])
    report.pop("worker")
    return report


def weights(model: ChurnModel) -> dict[str, float]:
    return dict(model.pipeline["LogisticRegression"].weights)


def learned(settings: Settings) -> float:
    return metric_total(settings, "churnwatch_model_labels")


def caught_up(settings: Settings) -> bool:
    """Every input partition read to its end by this (lone) worker: the group's committed part too."""
    text = http_get(settings, "/metrics")[1].decode()
    lags = [s.value for family in text_string_to_metric_families(text)
            for s in family.samples if s.name == "churnwatch_consumer_lag_messages"]
    return len(lags) == len(settings.input_topics) * settings.partitions and not any(lags)


def settled(workers: list[WorkerProcess], restarted: bool = False) -> int:
    """Once every event is processed and every worker learned the labels topic so far: its labels.

    A restarted worker does not read again what its group committed: it has
    processed everything when nothing is left to read.
    """
    settings = workers[0].settings
    assert wait_for(lambda: caught_up(settings) if restarted
                    else sum(events_consumed(w.settings) for w in workers) >= len(EVENTS), WAIT_S), \
        [w.log_text()[-2000:] for w in workers]
    # The model learns a week once every partition's clock has passed it: the topic settles a little after
    # the events are read (the clocks of the last sweeps), and then holds what the workers must learn.
    reads: list[tuple[ChurnModel, int]] = []

    def topic_settled() -> bool:
        reads.append(topic_model(settings))
        return len(reads) > 1 and reads[-1][1] == reads[-2][1] and reads[-1][0].labels.total() > 0

    wait_for(topic_settled, WAIT_S)
    reference, records = reads[-1]
    for worker in workers:
        assert wait_for(lambda worker=worker: learned(worker.settings) >= reference.labels.total(), WAIT_S), \
            (learned(worker.settings), reference.labels.total(), worker.log_text()[-2000:])
    assert records > 0 and reference.labels.total() > 0, "no labels: the test shows nothing"
    return reference.labels.total()


def test_two_workers_learn_every_label_and_hold_the_same_model(broker: Broker, tmp_path: Path) -> None:
    first = make_settings(broker, tmp_path / "one")
    second = first.model_copy(update={"data_dir": tmp_path / "two", "web_port": free_port()})
    asyncio.run(ensure_topics(first))
    workers = [WorkerProcess(s, tmp_path / f"{n}.log", broker.worker_env).start()
               for n, s in enumerate((first, second))]
    try:
        publish_events(first, EVENTS)
        settled_labels = settled(workers)
        # And one scoreboard: each worker answers GET /rules with the verdicts of both.
        boards = wait_for(lambda: (b := [group_outcomes(s) for s in (first, second)]) and b[0] == b[1]
                          and b[0]["churners"] > 0 and b, 60)
        assert boards, [group_outcomes(s) for s in (first, second)]
    finally:
        codes = [w.stop() for w in workers]
    assert codes == [0, 0], [w.log_text()[-2000:] for w in workers]
    assert first.model_file != second.model_file
    # The last sweeps may label a snapshot or two while the workers stop: each model is the topic's
    # model up to where it read, at least to where both had read everything; equal where they read alike.
    models = [ChurnModel.load(s.model_file, ModelConfig()) for s in (first, second)]
    for model in models:
        assert_topic_model(model, first, settled_labels)
    if models[0].labels_read == models[1].labels_read:
        assert weights(models[0]) == weights(models[1])


def test_a_killed_worker_ends_with_the_model_of_one_that_never_stopped(broker: Broker, tmp_path: Path) -> None:
    # Short sessions (the embedded broker's anyway): on Apache Kafka the restart would otherwise wait a
    # minute for the killed member to be dropped from the group, which is not what this test is about.
    settings = make_settings(broker, tmp_path / "data", model_checkpoint_s=1.0, session_timeout_s=6.0,
                             heartbeat_interval_s=1.0, rebalance_timeout_s=6.0)
    asyncio.run(ensure_topics(settings))
    # Killed once it has learned some labels and saved them, with events still to come: the last 13 days are
    # published only after the kill (a worker fast enough to read everything first would test nothing). The
    # first 47 days reach the model's version of the week after the first labels came due.
    cut = DEFAULT_START + timedelta(days=47)
    first, rest = [e for e in EVENTS if e.occurred_at < cut], [e for e in EVENTS if e.occurred_at >= cut]
    victim = WorkerProcess(settings, tmp_path / "first.log", broker.worker_env).start()
    try:
        publish_events(settings, first)
        assert wait_for(lambda: learned(settings) > 0, WAIT_S), victim.log_text()[-2000:]
        assert wait_for(lambda: settings.model_file.exists(), 30)
        assert victim.kill() == -9
    finally:
        victim.stop()
    publish_events(settings, rest)
    restarted = WorkerProcess(settings, tmp_path / "second.log", broker.worker_env).start()
    try:
        settled_labels = settled([restarted], restarted=True)
    finally:
        assert restarted.stop() == 0, restarted.log_text()[-2000:]
    assert_topic_model(ChurnModel.load(settings.model_file, ModelConfig()), settings, settled_labels)
