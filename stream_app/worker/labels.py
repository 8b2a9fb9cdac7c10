"""One model for the whole group: every label through one topic, learned by every worker in the same order.

A worker labels the snapshots of the customers it owns, and publishes each
labelled snapshot to the labels topic (one partition: one order for all)
instead of learning from it. Every worker follows that topic with a
consumer of its own, outside the input group (a broadcast: each reads
everything), and learns from every label in topic order, so every worker's
model is the same model, whatever the number of workers and however the
customers are spread.

The model checkpoint records how far into the topic it has learned
(``ChurnModel.labels_read``) and the ids of the labels it learned lately: a
restart reads on from there, so no label is learned twice or lost; a label
published twice (a crashed worker's uncommitted messages processed again)
is learned once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from churnwatch.kafka.security import aiokafka_options
from churnwatch.model import ChurnModel
from churnwatch.model.learned import label_id
from churnwatch.rules.labels import Labelled
from churnwatch.rules.state import Observation
from churnwatch.settings import Settings

log = logging.getLogger(__name__)

WIRE_VERSION = 1


def encode_label(label: Labelled) -> bytes:
    return json.dumps({
        "v": WIRE_VERSION,
        "customer_id": label.customer_id,
        "taken_at": label.taken_at,
        "feature_set": label.feature_set,
        "probability": label.probability,
        "raw": label.raw,
        "label": label.label,
        "observation": None if label.observation is None else label.observation.model_dump(),
    }, separators=(",", ":")).encode()


def decode_label(value: bytes) -> Labelled:
    doc = json.loads(value)
    if doc.get("v") != WIRE_VERSION:
        raise ValueError(f"labels of wire version {doc.get('v')!r} are not read by this version")
    observation = doc["observation"]
    return Labelled(
        customer_id=str(doc["customer_id"]), taken_at=int(doc["taken_at"]),
        observation=None if observation is None else Observation.model_validate(observation),
        feature_set=str(doc["feature_set"]), probability=doc["probability"], label=int(doc["label"]),
        raw=doc["raw"],
    )


def learn_record(model: ChurnModel, offset: int, value: bytes | None) -> bool:
    """Learn one record of the labels topic at ``offset``; False when it was skipped (a repeat, or unreadable)."""
    model.labels_read = offset + 1
    if value is None:
        return False
    try:
        label = decode_label(value)
    except (ValueError, KeyError, TypeError) as exc:
        model.skipped["unreadable label"] += 1
        log.warning("labels topic offset %d: not a label (%s); skipped", offset, exc)
        return False
    if not model.learned_recently.add(label_id(label)):
        return False
    return model.absorb((), (label,)) == 0


class LabelFollower:
    """Reads the labels topic from where the model stopped, for as long as the worker runs."""

    def __init__(self, settings: Settings, model: ChurnModel, on_learned: Any = None) -> None:
        """``on_learned()``: called after each batch that taught the model something (e.g. to export its numbers)."""
        self.settings = settings
        self.model = model
        self.on_learned = on_learned

    async def run(self) -> None:
        topic = TopicPartition(self.settings.topic_labels, 0)
        while True:
            consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.bootstrap_servers, group_id=None,
                                        enable_auto_commit=False, auto_offset_reset="earliest",
                                        **aiokafka_options(self.settings))
            try:
                await consumer.start()
                consumer.assign([topic])
                consumer.seek(topic, self.model.labels_read)
                while True:
                    batches = await consumer.getmany(topic, timeout_ms=500, max_records=2000)
                    learned = False
                    for record in batches.get(topic, []):
                        learned |= learn_record(self.model, record.offset, record.value)
                    if learned and self.on_learned is not None:
                        self.on_learned()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the model must keep learning once the broker is back
                log.exception("following the labels topic failed; again in 5 s")
                await asyncio.sleep(5)
            finally:
                await consumer.stop()
