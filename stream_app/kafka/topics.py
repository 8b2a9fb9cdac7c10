"""Topic creation: inputs co-partitioned with the state table, before any worker starts.

A customer's state lives in the table partition that matches the partition of
the event being processed, so every input topic must have the table's
partition count. Auto-created topics would get the broker's default instead;
we create them explicitly and refuse to run on a mismatch.
"""

from __future__ import annotations

import asyncio

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from churnwatch.kafka.security import aiokafka_options
from churnwatch.settings import Settings


class TopicLayoutError(RuntimeError):
    pass


async def ensure_topics(settings: Settings, timeout_s: float = 30.0) -> None:
    """Create the input, alert, dead-letter and labels topics; check the input partition counts.

    The labels topic has one partition, so every worker learns the labels in
    one order (churnwatch.worker.labels), and keeps them for
    ``labels_retention_days``.
    """
    admin = await _admin(settings, timeout_s)
    try:
        names = [*settings.co_partitioned_topics, settings.topic_alerts, settings.topic_dead_letters]
        topics = [NewTopic(name, settings.partitions, settings.replication_factor) for name in names]
        topics.append(NewTopic(settings.topic_labels, 1, settings.replication_factor, topic_configs={
            "retention.ms": str(settings.labels_retention_days * 86_400_000)}))
        for topic in topics:
            try:
                await asyncio.wait_for(admin.create_topics([topic]), timeout_s)
            except TopicAlreadyExistsError:
                pass
        await _check_partitions(admin, settings, timeout_s)
    finally:
        await admin.close()


async def cluster_id(settings: Settings, timeout_s: float = 30.0) -> str | None:
    """The cluster's id, as the broker states it in metadata."""
    admin = await _admin(settings, timeout_s)
    try:
        described = await asyncio.wait_for(admin.describe_cluster(), timeout_s)
    finally:
        await admin.close()
    found = described.get("cluster_id")
    return str(found) if found else None


async def partitions_of(settings: Settings, topic: str, timeout_s: float = 30.0) -> list[int]:
    """The partitions a topic has (none when it does not exist yet), as the broker's metadata says."""
    admin = await _admin(settings, timeout_s)
    try:
        described = await asyncio.wait_for(admin.describe_topics([topic]), timeout_s)
    finally:
        await admin.close()
    return sorted(int(p["partition"]) for found in described if found["topic"] == topic
                  for p in found["partitions"])


async def _admin(settings: Settings, timeout_s: float) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers, request_timeout_ms=int(timeout_s * 1000),
        **aiokafka_options(settings),
    )
    await asyncio.wait_for(admin.start(), timeout_s)
    return admin


async def _check_partitions(admin: AIOKafkaAdminClient, settings: Settings, timeout_s: float) -> None:
    topics = list(settings.co_partitioned_topics)
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        described = await asyncio.wait_for(admin.describe_topics(topics), timeout_s)
        counts = {topic["topic"]: len(topic["partitions"]) for topic in described}
        # A topic just created may not be in the metadata yet (Apache Kafka creates it
        # asynchronously): no partitions is "not yet", not a wrong count.
        if all(counts.get(t) for t in topics) or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.2)
    wrong = {topic: count for topic, count in counts.items() if count != settings.partitions}
    if wrong:
        raise TopicLayoutError(
            f"input topics must have {settings.partitions} partitions (CHURNWATCH_PARTITIONS); "
            f"found {wrong}. Recreate them or set CHURNWATCH_PARTITIONS to match."
        )
