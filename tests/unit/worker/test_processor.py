"""The processor's delivery order: alerts first, then what the model learns, all in the outbox; a re-read does nothing.

A real Faust app and table (no broker): the processor as the worker builds
it, with its output topics replaced by recorders.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from churnwatch.rules import RulesConfig
from churnwatch.schemas.alert import Alert
from churnwatch.schemas.dead_letter import DeadLetter
from churnwatch.settings import Settings
from churnwatch.testing import day, failed, subscription
from churnwatch.worker.app import faust_app
from churnwatch.worker.processor import Processor


class Recorder:
    """An output topic: records each send, in one list shared by all of them (the order across topics)."""

    def __init__(self, name: str, log: list[tuple[str, bytes]], fail: bool = False) -> None:
        self.name, self.log, self.fail = name, log, fail

    async def send(self, key: bytes | None = None, value: bytes = b"", partition: int | None = None) -> Any:
        if self.fail:
            raise ConnectionError("the labels topic is not there")
        self.log.append((self.name, value))
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def get_topic_name(self) -> str:
        return self.name


def _processor(tmp_path: Path, labels_fail: bool = False) -> tuple[Processor, list[tuple[str, bytes]]]:
    settings = Settings(app_id="processor-test", data_dir=tmp_path, clock="event")
    processor = Processor(faust_app(settings, web_enabled=False), settings, RulesConfig())
    sent: list[tuple[str, bytes]] = []
    processor.alerts = Recorder("alerts", sent)
    processor.labels = Recorder("labels", sent, fail=labels_fail)
    processor.dead_letters.topic = Recorder("dead-letters", sent)
    return processor, sent


def _message(topic: str, offset: int, event: Any = None, raw: bytes | None = None) -> Any:
    value = raw if raw is not None else event.model_dump_json().encode()
    key = event.customer_id.encode() if event is not None else b"acme"
    return SimpleNamespace(message=SimpleNamespace(topic=topic, partition=0, offset=offset, key=key, value=value))


def test_an_alert_goes_into_the_outbox_and_its_state_waits_for_the_next_write(tmp_path: Path) -> None:
    processor, sent = _processor(tmp_path)
    payments = processor.settings.topic_payments

    async def scenario() -> None:
        await processor.handle(_message(payments, 7, failed(day(3), customer="acme")))
        assert [topic for topic, _ in sent] == ["alerts"]
        assert Alert.model_validate_json(sent[0][1]).rule.value == "payment_failure"
        assert len(processor.states.outbox) == 1
        state = processor.states.get("acme")
        assert state is not None and state.inputs == {payments: 7}
        assert processor.states.pending("acme") and processor.table.get("acme") is None  # not written yet

    asyncio.run(scenario())


def test_a_message_read_again_sends_nothing_and_changes_nothing(tmp_path: Path) -> None:
    processor, sent = _processor(tmp_path)
    payments = processor.settings.topic_payments
    event = failed(day(3), customer="acme")

    async def scenario() -> None:
        await processor.handle(_message(payments, 7, event))
        kept = processor.states.get("acme")
        again = event.model_copy(update={"event_id": "published-anew"})  # not the ids: the offset tells
        await processor.handle(_message(payments, 7, again))
        assert [topic for topic, _ in sent] == ["alerts"] and processor.states.get("acme") is kept

    asyncio.run(scenario())


def test_a_model_that_cannot_publish_loses_no_alert(tmp_path: Path) -> None:
    """A failure in one step (learning) never loses an alert: the alert was out before it."""
    processor, sent = _processor(tmp_path, labels_fail=True)
    subscriptions = processor.settings.topic_subscriptions

    payments = processor.settings.topic_payments

    async def scenario() -> None:
        await processor.handle(_message(subscriptions, 0, subscription(day(0), 100.0, "started", customer="acme")))
        await processor.handle(_message(payments, 0, failed(day(2), customer="acme")))
        # 40 days on: the alert's horizon has passed, its verdict (a miss) is due on the labels topic, which fails.
        await processor.handle(_message(payments, 1, failed(day(42), customer="acme", invoice="inv-2")))

    asyncio.run(scenario())
    assert [topic for topic, _ in sent].count("alerts") >= 2
    assert processor.metrics.learning_failures._value.get() > 0
    state = processor.states.get("acme")
    assert state is not None and state.inputs == {subscriptions: 0, payments: 1}


def test_a_rejected_message_goes_to_the_dead_letters_through_the_outbox(tmp_path: Path) -> None:
    processor, sent = _processor(tmp_path)

    async def scenario() -> None:
        await processor.handle(_message(processor.settings.topic_usage, 3, raw=b"{not json"))

    asyncio.run(scenario())
    assert [topic for topic, _ in sent] == ["dead-letters"] and len(processor.states.outbox) == 1
    assert DeadLetter.model_validate_json(sent[0][1]).offset == 3
