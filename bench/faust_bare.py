"""The framework floors: a bare Faust agent that only parses JSON, or that
also writes one table entry per event.

Run as a process by the benchmark (``python -m bench.faust_bare``); settings
from the same ``CHURNWATCH_*`` variables as the worker, plus
``BENCH_EXPECT`` (messages to read), ``BENCH_RESULT`` (file to write the
rate and this process's CPU microseconds per message to), ``BENCH_TABLE`` ("1": write the event to a table, keyed by the
customer id, as a stateful agent must), ``BENCH_TAKE`` (optional, a number: read the stream in
batches of up to that many with Faust's ``take``, as the fastest way of using Faust there is; with
the table, one write per customer per batch, as the peer coalesces) and ``BENCH_COUNT_FILE``
(optional: where to write the messages read so far, every 1,000, for ``bench.profile``), ``BENCH_STORE``
(optional: another table store, e.g. ``rocksdb://``, which Faust runs on rocksdict) and ``BENCH_READY``
(optional: a file written once the table is restored, for ``bench.restart``). It uses the worker's Faust settings,
so the only difference from ``churnwatch worker`` is the work done per message.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import faust

from churnwatch.worker.app import faust_app
from churnwatch.settings import Settings


def main() -> None:
    settings = Settings.from_env()
    expect = int(os.environ["BENCH_EXPECT"])
    result = Path(os.environ["BENCH_RESULT"])
    with_table = os.environ.get("BENCH_TABLE") == "1"
    count_file = os.environ.get("BENCH_COUNT_FILE")  # messages read so far, every 1,000 (for the profiler)
    store = os.environ.get("BENCH_STORE")  # another table store to try, e.g. "rocksdb://" (Faust runs it on rocksdict)
    ready_file = os.environ.get("BENCH_READY")  # written once the table is restored
    app = faust_app(settings.model_copy(update={"store": store}) if store else settings, web_enabled=False)
    topic = app.topic(*settings.input_topics, key_type=bytes, value_type=bytes,
                      key_serializer="raw", value_serializer="raw")
    # Keyed and valued as the worker's state table.
    table = app.Table("bare-state", default=None, partitions=settings.partitions, key_type=str, value_type=bytes)
    take = int(os.environ.get("BENCH_TAKE") or 0)

    @app.task
    async def restored() -> None:
        await app.tables.recovery.completed.wait()
        if ready_file:
            Path(ready_file).write_text("ready")

    seen = {"count": 0, "first": 0.0, "cpu": 0.0}

    def counted(n: int) -> None:
        if seen["count"] == 0:
            seen["first"] = time.perf_counter()
            seen["cpu"] = time.process_time()
        before = seen["count"]
        seen["count"] += n
        if count_file and seen["count"] // 1000 > before // 1000:
            Path(count_file).write_text(str(seen["count"]))
        if before < expect <= seen["count"]:
            rate = expect / (time.perf_counter() - seen["first"])
            cpu_us = (time.process_time() - seen["cpu"]) / expect * 1e6
            result.write_text(f"{rate} {cpu_us}")

    @app.agent(topic)
    async def parse(stream: faust.StreamT[bytes]) -> None:
        if take:
            # The key comes with the value only through the stream's current event.
            async for values in stream.take_events(take, within=0.05):
                batch = {}
                for event in values:
                    json.loads(event.value)
                    batch[event.key.decode()] = (event.message.partition, event.value)
                if with_table:
                    # Outside the stream's iteration a table write cannot find its
                    # partition: it is given, as the worker's changelog writer does.
                    for customer, (partition, value) in batch.items():
                        table.data[customer] = value
                        table.send_changelog(partition, customer, value)
                counted(len(values))
            return
        async for event in stream.events():
            json.loads(event.value)
            if with_table:
                table[event.key.decode()] = event.value
            counted(1)

    faust.Worker(app, loglevel="warning").execute_from_commandline()


if __name__ == "__main__":
    main()
