"""Every worker reads the whole alerts topic, outside the input group, into its board of open alerts.

Why not gather the open episodes from every worker's states at each request:
the alerts topic already holds, in one place, the exact messages support
tools were sent, for every customer of the group; reading it keeps
``GET /alerts`` one local answer on any worker, during a rebalance too, at the
cost of a fetch's delay behind the topic.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from churnwatch.kafka.security import aiokafka_options
from churnwatch.kafka.topics import partitions_of
from churnwatch.open_alerts import OpenAlerts
from churnwatch.schemas.alert import Alert
from churnwatch.settings import Settings

log = logging.getLogger(__name__)


class AlertFollower:
    """Reads the alerts topic from where the board stopped, for as long as the worker runs."""

    def __init__(self, settings: Settings, board: OpenAlerts) -> None:
        self.settings = settings
        self.board = board

    async def run(self) -> None:
        topic = self.settings.topic_alerts
        while True:
            consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.bootstrap_servers, group_id=None,
                                        enable_auto_commit=False, auto_offset_reset="earliest",
                                        **aiokafka_options(self.settings))
            try:
                partitions = await partitions_of(self.settings, topic)
                await consumer.start()
                if not partitions:
                    raise LookupError(f"the alerts topic {topic} has no partitions yet")
                tps = [TopicPartition(topic, p) for p in partitions]
                consumer.assign(tps)
                for tp in tps:
                    if tp.partition in self.board.read:
                        consumer.seek(tp, self.board.read[tp.partition])
                    else:
                        await consumer.seek_to_beginning(tp)
                while True:
                    batches = await consumer.getmany(timeout_ms=500, max_records=2000)
                    for tp, messages in batches.items():
                        for message in messages:
                            self._take(tp.partition, message)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the open alerts must come back once the broker is back
                log.exception("following the alerts topic failed; again in 5 s")
                await asyncio.sleep(5)
            finally:
                await consumer.stop()

    def _take(self, partition: int, message: Any) -> None:
        try:
            alert = Alert.model_validate_json(message.value or b"")
        except ValidationError as exc:  # another publisher's message on our topic: not ours to show
            self.board.read[partition] = message.offset + 1
            log.warning("alerts topic [%d]@%d: not an alert (%s); skipped", partition, message.offset,
                        str(exc).splitlines()[0])
            return
        self.board.take(partition, message.offset, alert)
