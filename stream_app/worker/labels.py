"""One model and one scoreboard for the whole group: labels and verdicts through one topic, read by every worker.

A worker labels the snapshots of the customers it owns and judges their
alerts (``rules.outcomes``), and publishes each labelled snapshot, each
weekly assessment (the stakes the alert budget ranks against), each verdict
and each churn counted to the labels topic (one partition: one order for
all) instead of using them itself. Every worker follows that topic with a
consumer of its own, outside the input group (a broadcast: each reads
everything): its model takes every label and assessment, and its scoreboard
counts every verdict. So every worker's ``GET /rules`` has the numbers of
the whole group, whatever the number of workers, however the customers are
spread, and after a worker has left.

The model learns by event-time week (``ChurnModel.advance``). After each
sweep a worker announces, per input partition it owns, a ``clock``: a time
before which everything of that partition's customers is published (its
sweep's time, held back by any customer still due, and by any snapshot
waiting for its model). When every partition has announced a week, the
follower makes that week's version: so every worker, and a replay of the same
input, scores a snapshot with the same model, and the same ``model_risk``
alerts go out whichever worker sends them.

The model checkpoint and the scoreboard each record how far into the topic
they have read (``labels_read``) and the ids of what they took lately: a
restart reads on from there, so nothing is taken twice or lost; a record
published twice (a crashed worker's uncommitted messages processed again) is
taken once.

Verdicts go on the labels topic rather than a topic of their own because
they follow the same path (every worker, one order, the same checkpoints)
and are few (one per alert, one per churner): one follower, one place in
one topic to keep.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from typing import NamedTuple

from aiokafka import AIOKafkaConsumer, TopicPartition

from churnwatch.kafka.security import aiokafka_options
from churnwatch.model import ChurnModel
from churnwatch.rules.engine import Assessment
from churnwatch.rules.labels import Labelled
from churnwatch.rules.outcomes import Churn, Judged, Verdict
from churnwatch.rules.state import Observation
from churnwatch.schemas.alert import RuleName
from churnwatch.scoreboard import Scoreboard
from churnwatch.settings import Settings

log = logging.getLogger(__name__)

WIRE_VERSION = 1
FETCH_WAIT_MS = 50


def _wire(kind: str, fields: dict[str, Any]) -> bytes:
    return json.dumps({"v": WIRE_VERSION, "kind": kind, **fields}, separators=(",", ":")).encode()


def encode_label(label: Labelled) -> bytes:
    return _wire("label", {
        "customer_id": label.customer_id, "taken_at": label.taken_at, "feature_set": label.feature_set,
        "probability": label.probability, "raw": label.raw, "label": label.label,
        "observation": None if label.observation is None else label.observation.model_dump(),
    })


def encode_judged(judged: Judged) -> bytes:
    return _wire("judged", {
        "customer_id": judged.customer_id, "rule": judged.rule.value, "alert_id": judged.alert_id,
        "warned_at": judged.warned_at, "verdict": judged.verdict.value, "judged_at": judged.judged_at,
        "lead_days": judged.lead_days,
    })


class PartitionClock(NamedTuple):
    """Everything of ``partition``'s customers due before ``at`` is on the labels topic ahead of this."""

    partition: int
    at: int


def encode_assessment(assessment: Assessment) -> bytes:
    return _wire("assessed", {"customer_id": assessment.customer_id, "at": assessment.at,
                              "stake": assessment.stake})


def encode_clock(clock: PartitionClock) -> bytes:
    return _wire("clock", {"partition": clock.partition, "at": clock.at})


def encode_churn(churn: Churn) -> bytes:
    return _wire("churn", {"customer_id": churn.customer_id, "churned_at": churn.churned_at,
                           "warned": [[rule.value, lead] for rule, lead in churn.warned]})


Record = Labelled | Judged | Churn | Assessment | PartitionClock


def decode_record(value: bytes) -> Record:
    """A record of the labels topic: a labelled snapshot (``kind`` label), an assessment, a clock, a verdict
    or a churn."""
    doc = json.loads(value)
    if doc.get("v") != WIRE_VERSION:
        raise ValueError(f"records of wire version {doc.get('v')!r} are not read by this version")
    kind = doc.get("kind", "label")
    if kind == "judged":
        return Judged(str(doc["customer_id"]), RuleName(doc["rule"]), str(doc["alert_id"]), int(doc["warned_at"]),
                      Verdict(doc["verdict"]), int(doc["judged_at"]), doc["lead_days"])
    if kind == "churn":
        return Churn(str(doc["customer_id"]), int(doc["churned_at"]),
                     tuple((RuleName(rule), float(lead)) for rule, lead in doc["warned"]))
    if kind == "assessed":
        return Assessment(int(doc["at"]), float(doc["stake"]), str(doc["customer_id"]))
    if kind == "clock":
        return PartitionClock(int(doc["partition"]), int(doc["at"]))
    if kind != "label":
        raise ValueError(f"unknown kind {kind!r}")
    return decode_label(doc)


def decode_label(doc: dict[str, Any]) -> Labelled:
    observation = doc["observation"]
    return Labelled(
        customer_id=str(doc["customer_id"]), taken_at=int(doc["taken_at"]),
        observation=None if observation is None else Observation.model_validate(observation),
        feature_set=str(doc["feature_set"]), probability=doc["probability"], label=int(doc["label"]),
        raw=doc["raw"],
    )


def read_record(offset: int, value: bytes | None) -> Record | None:
    """The record at ``offset``, or None (logged) when it cannot be read: one bad record never stops the follower."""
    if value is None:
        return None
    try:
        return decode_record(value)
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("labels topic offset %d: not readable (%s); skipped", offset, exc)
        return None


def learn_record(model: ChurnModel, offset: int, record: Record | None, partitions: int) -> bool:
    """The model's part of the record at ``offset``; False when it changed nothing.

    Labels and assessments are taken; a partition's clock may complete a day
    for all ``partitions``, and then the model learns that day's labels.
    """
    model.labels_read = offset + 1
    if record is None:
        model.skipped["unreadable label"] += 1
        return False
    if isinstance(record, Labelled):
        return model.absorb((), (record,)) > 0
    if isinstance(record, Assessment):
        return model.absorb((record,), ()) > 0
    if not isinstance(record, PartitionClock):
        return False
    if record.at <= model.clocks.get(record.partition, record.at - 1):
        return False  # a partition's new owner may start behind what its last owner announced
    model.clocks[record.partition] = record.at
    if any(p not in model.clocks for p in range(partitions)):
        return False
    before = model.learned_until
    model.advance(min(model.clocks[p] for p in range(partitions)))
    return model.learned_until != before


def count_record(board: Scoreboard, offset: int, record: Record | None) -> bool:
    """The scoreboard's part of the record at ``offset`` (verdicts, churns); False when there was nothing to count."""
    board.labels_read = offset + 1
    if isinstance(record, Judged):
        if board.seen.add(f"judged:{record.alert_id}"):
            board.add((record,), ())
            return True
    elif isinstance(record, Churn):
        if board.seen.add(f"churn:{record.customer_id}@{record.churned_at}"):
            board.add((), (record,))
            return True
    return False


class LabelFollower:
    """Reads the labels topic from where the model and the scoreboard stopped, for as long as the worker runs."""

    def __init__(self, settings: Settings, model: ChurnModel, board: Scoreboard, on_learned: Any = None,
                 on_counted: Any = None) -> None:
        """``on_learned()``, ``on_counted()``: called after a batch that taught the model, or added to the board."""
        self.settings = settings
        self.model = model
        self.board = board
        self.on_learned = on_learned
        self.on_counted = on_counted

    async def run(self) -> None:
        topic = TopicPartition(self.settings.topic_labels, 0)
        while True:
            # A short fetch wait: a clock record read late holds every worker's model back by as much.
            consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.bootstrap_servers, group_id=None,
                                        enable_auto_commit=False, auto_offset_reset="earliest",
                                        fetch_max_wait_ms=FETCH_WAIT_MS, **aiokafka_options(self.settings))
            try:
                await consumer.start()
                consumer.assign([topic])
                consumer.seek(topic, min(self.model.labels_read, self.board.labels_read))
                while True:
                    batches = await consumer.getmany(topic, timeout_ms=500, max_records=2000)
                    learned = counted = False
                    for message in batches.get(topic, []):
                        offset = message.offset
                        record = read_record(offset, message.value)
                        if offset >= self.model.labels_read:
                            learned |= learn_record(self.model, offset, record, self.settings.partitions)
                        if offset >= self.board.labels_read:
                            counted |= count_record(self.board, offset, record)
                    if learned and self.on_learned is not None:
                        self.on_learned()
                    if counted and self.on_counted is not None:
                        self.on_counted()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the model must keep learning once the broker is back
                log.exception("following the labels topic failed; again in 5 s")
                await asyncio.sleep(5)
            finally:
                await consumer.stop()
