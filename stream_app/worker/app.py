"""The Faust app of a worker: one agent, two timers, the label follower, the HTTP pages.

One agent consumes the input topics (one per event type) and the sweep-tick topic, all
co-partitioned with the state table, so a customer's state is written to the
changelog partition its events come from. What it takes goes through the
sequencer, which puts each partition number's input events in event-time
order (``churnwatch.worker.sequencer``) before the processor. The sweep timer runs on every
worker (``churnwatch.worker.sweep``); the label follower teaches the model
every label of the group (``churnwatch.worker.labels``), and the model
checkpoint timer saves what it learned. Everything here only moves data in and out: decisions are
made by the runner and the core behind it.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.sensors.monitor import Monitor

from churnwatch.http.limits import web_application_options
from churnwatch.http.pages import add_pages, readiness
from churnwatch.kafka.security import faust_credentials
from churnwatch.rules import RulesConfig
from churnwatch.settings import Settings
from churnwatch.worker.faust_private import (
    ClientView,
    answer_from,
    before_waiting_for_acks,
    commit_acknowledged,
    control_fetching,
    fetch_wait,
    rewind_uncommitted,
)
from churnwatch.worker.merge import EventTimeMerge
from churnwatch.worker.processor import STATE_TABLE, Processor
from churnwatch.worker.sequencer import Sequencer

__all__ = ["STATE_TABLE", "build_app", "faust_app"]


class QuietMonitor(Monitor):
    """Faust's monitor without its per-message bookkeeping, which nothing of churnwatch reads.

    Faust's own monitor counts and times every message, stream event, send
    and table access for its statistics pages; the worker's numbers are its
    Prometheus metrics. With these hooks as no-ops the bare agent of the bench
    spent about 8% less CPU per message (190.8 and 200.8 against 175.4 and
    179.2 us, two paired runs on Apache Kafka).
    """

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        pass

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
        return None

    def on_stream_event_out(self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None) -> None:
        pass

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        pass

    def on_send_initiated(self, producer: Any, topic: str, message: Any, keysize: int, valsize: int) -> None:
        return None

    def on_send_completed(self, producer: Any, state: Any, metadata: Any) -> None:
        pass

    def on_table_get(self, table: Any, key: Any) -> None:
        pass

    def on_table_set(self, table: Any, key: Any, value: Any) -> None:
        pass


def faust_app(settings: Settings, web_enabled: bool = True) -> faust.App:
    """The Faust app with churnwatch's settings (the benchmark's bare agent uses it too)."""
    app = faust.App(
        settings.app_id,
        broker=settings.faust_broker_url,
        broker_credentials=faust_credentials(settings),
        store=settings.store,
        datadir=str(settings.data_dir),
        # A standby copy in memory saves nothing: a memory store has no offsets of its own, so taking a
        # partition over reads its changelog from the start anyway. Only the on-disk store resumes from one.
        table_standby_replicas=settings.standby_replicas if settings.standby_replicas is not None
        else 0 if settings.store.startswith("memory") else 1,
        autodiscover=False,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
        broker_rebalance_timeout=settings.rebalance_timeout_s,
        producer_max_batch_size=settings.producer_max_batch_size,
        consumer_max_fetch_size=settings.consumer_max_fetch_bytes,
        web_enabled=web_enabled,
        web_bind=settings.web_host,
        web_host=settings.canonical_host,
        web_port=settings.web_port,
        web_application_options=web_application_options(settings),
    )
    app.monitor = QuietMonitor()
    return app


def build_app(settings: Settings, rules: RulesConfig) -> faust.App:
    """The worker's Faust app; built per process, so tests can run several."""
    app = faust_app(settings)
    processor = Processor(app, settings, rules)
    states = processor.states
    read = (*settings.input_topics, settings.topic_sweep_ticks)  # a partition number's events and ticks, merged
    merge = EventTimeMerge(read, ClientView(app), settings.merge_hold)
    sequencer = Sequencer(processor, merge)

    async def process(stream: faust.StreamT[bytes]) -> None:
        manual = stream.noack()  # acknowledged by the changelog writer, after the state is written
        async for message_event in manual.events():
            await sequencer.receive(manual, message_event)

    app.agent(processor.source, name="churnwatch.process")(process)
    rewind_uncommitted(app, frozenset(read))
    states.on_acknowledged = commit_acknowledged(app, frozenset(read))
    control_fetching(app, lambda: merge.held, sequencer.fetched)
    fetch_wait(app, settings.consumer_fetch_wait_ms)
    before_waiting_for_acks(app, sequencer.drop)
    app.task(sequencer.run)

    @app.on_partitions_assigned.connect
    async def _reading(app: faust.App, assigned: Any, **kwargs: Any) -> None:
        merge.assigned((tp.topic, tp.partition) for tp in assigned if tp.topic in read)

    app.timer(interval=settings.sweep_interval_s, on_leader=False)(processor.sweep)
    app.timer(interval=settings.model_checkpoint_s, on_leader=False)(processor.checkpoint)
    app.task(processor.follower.run)
    app.task(processor.alert_follower.run)
    app.task(processor.announce)

    async def forward(owner: str, web: Any, request: Any) -> Any:
        return await answer_from(app, owner, web, request)

    add_pages(app, processor.metrics.registry, lambda: readiness(app, settings.input_topics), processor.lookup,
              forward, processor.outcomes, processor.open_alerts.answer, processor.support_page)

    @app.on_before_shutdown.connect
    async def _write_and_save(app: faust.App, **kwargs: Any) -> None:
        await states.stop()
        await processor.checkpoint()

    return app
