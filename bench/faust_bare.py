"""The framework floors: a bare Faust agent that only parses JSON, or that
also writes one table entry per event.

Run as a process by the benchmark (``python -m bench.faust_bare``); settings
from the same ``CHURNWATCH_*`` variables as the worker, plus
``BENCH_EXPECT`` (messages to read), ``BENCH_RESULT`` (file to write the
rate and this process's CPU microseconds per message to), ``BENCH_TABLE`` ("1": write the event to a table, keyed by the
customer id, as a stateful agent must) and ``BENCH_COUNT_FILE`` (optional: where to write the
messages read so far, every 1,000, for ``bench.profile``). It uses the worker's Faust settings,
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
    app = faust_app(settings, web_enabled=False)
    topic = app.topic(*settings.input_topics, key_type=bytes, value_type=bytes,
                      key_serializer="raw", value_serializer="raw")
    # Keyed and valued as the worker's state table.
    table = app.Table("bare-state", default=None, partitions=settings.partitions, key_type=str, value_type=bytes)
    seen = {"count": 0, "first": 0.0, "cpu": 0.0}

    @app.agent(topic)
    async def parse(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            if seen["count"] == 0:
                seen["first"] = time.perf_counter()
                seen["cpu"] = time.process_time()
            json.loads(event.value)
            if with_table:
                table[event.key.decode()] = event.value
            seen["count"] += 1
            if count_file and seen["count"] % 1000 == 0:
                Path(count_file).write_text(str(seen["count"]))
            if seen["count"] == expect:
                rate = expect / (time.perf_counter() - seen["first"])
                cpu_us = (time.process_time() - seen["cpu"]) / expect * 1e6
                result.write_text(f"{rate} {cpu_us}")

    faust.Worker(app, loglevel="warning").execute_from_commandline()


if __name__ == "__main__":
    main()
