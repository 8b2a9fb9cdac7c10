"""The peer a user would weigh churnwatch against: a Quix Streams app on the same broker and events.

Run by the benchmark from its own virtual environment (``.quix-venv``: Quix
Streams pins a confluent-kafka of its own), so it imports nothing of
churnwatch. Two modes, like the bare Faust agent's: ``parse`` reads and
parses each event; ``state`` also reads, updates and writes back a small
per-customer record in Quix's state store (RocksDB, with its changelog topic,
at-least-once), as a stateful stream processor must.

Settings from the environment: ``PEER_BOOTSTRAP``, ``PEER_TOPICS`` (comma
separated), ``PEER_GROUP``, ``PEER_STATE_DIR``, ``PEER_MODE``,
``PEER_EXPECT`` (messages to read) and ``PEER_RESULT`` (the file to write
the rate, the CPU microseconds per message of this process, and the
changelog messages produced to).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from quixstreams import Application, State


def main() -> None:
    expect = int(os.environ["PEER_EXPECT"])
    stateful = os.environ["PEER_MODE"] == "state"
    result = Path(os.environ["PEER_RESULT"])
    app = Application(
        broker_address=os.environ["PEER_BOOTSTRAP"], consumer_group=os.environ["PEER_GROUP"],
        auto_offset_reset="earliest", processing_guarantee="at-least-once",
        state_dir=os.environ["PEER_STATE_DIR"], loglevel="WARNING", use_changelog_topics=stateful,
    )
    seen = {"count": 0, "first": 0.0, "cpu": 0.0}

    def counted() -> None:
        if seen["count"] == 0:
            seen["first"] = time.perf_counter()
            seen["cpu"] = time.process_time()
        seen["count"] += 1
        if seen["count"] == expect:
            rate = expect / (time.perf_counter() - seen["first"])
            cpu_us = (time.process_time() - seen["cpu"]) / expect * 1e6
            result.write_text(f"{rate} {cpu_us}")
            app.stop()

    def parsed(value: dict[str, Any]) -> None:
        counted()

    def remembered(value: dict[str, Any], state: State) -> None:
        # What any per-customer state needs at least: read the record, change it, write it back.
        record = state.get("customer", None) or {"events": 0, "by_type": {}}
        record["events"] += 1
        kind = str(value.get("type"))
        record["by_type"][kind] = record["by_type"].get(kind, 0) + 1
        record["last_at"] = value.get("occurred_at")
        state.set("customer", record)
        counted()

    for name in os.environ["PEER_TOPICS"].split(","):
        topic = app.topic(name, key_deserializer="str", value_deserializer="json")
        frame = app.dataframe(topic)
        if stateful:
            frame.update(remembered, stateful=True)
        else:
            frame.update(parsed)
    app.run()


if __name__ == "__main__":
    main()
