"""Can any way of using Faust come near the peer? The bare agent four ways, and Quix Streams, on one broker.

``python -m bench.faust_ways [--broker kafka|embedded]``: on the same
published events (the bench's mix), the bare Faust agent reading event by
event or in ``take`` batches, each with and without per-customer table
writes (in batches, one write per customer per batch, as the peer coalesces
its changelog), and Quix Streams stateless and stateful. Prints the rate and
the CPU microseconds per event of each.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
from pathlib import Path

from bench import broker as on_broker

TAKE = 1_000  # events per batch


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench.faust_ways")
    parser.add_argument("--broker", choices=("kafka", "embedded"), default="kafka")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=100_000)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory() as tmp, on_broker.started(args.broker, Path(tmp)) as (servers, _, tuning, __):
        settings = on_broker.fresh_settings(servers, Path(tmp) / "d")
        events = on_broker.realistic_mix(args.events, args.customers)
        asyncio.run(on_broker.publish(settings, events))
        print(f"{len(events):,} events over {args.customers:,} customers on {args.broker}", flush=True)
        ways = (
            ("Faust agent, event by event, parse only", {}),
            (f"Faust agent, take({TAKE}), parse only", {"take": TAKE}),
            ("Faust agent, event by event, one table write per event", {"table": True}),
            (f"Faust agent, take({TAKE}), one table write per customer per batch", {"table": True, "take": TAKE}),
        )
        for n, (name, way) in enumerate(ways):
            got = on_broker.bare_faust_rate(settings.model_copy(update={"app_id": f"{settings.app_id}-way{n}"}),
                                            len(events), tuning, **way)
            print(f"  {name:<68} {got.rate:>9,.0f} events/s {got.cpu_us:>7.1f} us CPU/event", flush=True)
        for stateful in (False, True):
            got = on_broker.peer_rate(settings, len(events), stateful=stateful)
            name = "Quix Streams, " + ("per-customer state (RocksDB, changelog)" if stateful else "parse only")
            print(f"  {name:<68} {got.rate:>9,.0f} events/s {got.cpu_us:>7.1f} us CPU/event", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
