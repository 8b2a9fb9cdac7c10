"""The Faust shell: topics, the state table, the agent and the sweep timer.

Everything here moves bytes in and out; decisions are made by
``churnwatch.schemas.intake.decode_event`` and the core in ``rules``.

One agent consumes the four input topics and the sweep-tick topic, all
co-partitioned with the state table, so a customer's state is written to the
changelog partition its events come from. The sweep timer runs on every
worker; it finds due customers in this worker's index and sends each a tick
to that customer's partition, where the agent evaluates it.

Each message is processed as it comes (its alerts are sent at once), but
changed states are written to the table, one changelog message per customer,
only every ``batch_max`` messages or ``batch_wait_s`` seconds, and the
messages are acknowledged only once the broker has confirmed that write. A
customer busy within the window costs one changelog message, not one per
event; a crash before the write leaves those offsets uncommitted, so the
messages are read again and the event ids make the repeat harmless.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

import faust
from aiokafka.partitioner import murmur2
from faust.exceptions import ConsumerNotStarted
from faust.types import TP, EventT
from yarl import URL
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError

from churnwatch.rules import CustomerState, Outcome, RulesConfig, apply_event, evaluate
from churnwatch.rules.clock_math import iso, to_datetime, to_seconds
from churnwatch.rules.features import inputs, observe
from churnwatch.rules.engine import Transition, is_future
from churnwatch.schemas.dead_letter import DeadLetter, RejectReason
from churnwatch.schemas.events import MAX_ID_CHARS
from churnwatch.schemas.intake import Rejection, decode_event, describe
from churnwatch.model import ChurnModel
from churnwatch.worker.clock import Clock, Progress, make_clock
from churnwatch.due_index import DueIndex
from churnwatch.http.limits import web_application_options
from churnwatch.kafka.security import faust_credentials
from churnwatch.http.metrics import Metrics
from churnwatch.settings import Settings
from churnwatch.worker.state_cache import DecodedStates

log = logging.getLogger(__name__)

STATE_TABLE = "customer-state"
DEAD_LETTER_KEEPS = 262_144  # bytes of a rejected key or value copied into its dead letter
_RAW_BYTES: dict[str, Any] = {
    "key_type": bytes,
    "value_type": bytes,
    "key_serializer": "raw",
    "value_serializer": "raw",
}


class SweepTick(BaseModel):
    """A sweep command: evaluate this message's customer at ``now``."""

    model_config = ConfigDict(extra="forbid")
    now: AwareDatetime


def encode_tick(now: datetime) -> bytes:
    return SweepTick(now=now).model_dump_json().encode()


def decode_tick(value: bytes | None) -> datetime | Rejection:
    try:
        return SweepTick.model_validate_json(value or b"").now
    except ValidationError as exc:
        return Rejection(RejectReason.INVALID_SCHEMA, f"sweep tick: {describe(exc)}")


class Processor:
    """The worker's moving parts between Kafka and the core; one per process."""

    def __init__(self, app: faust.App, settings: Settings, rules: RulesConfig) -> None:
        self.app = app
        self.settings = settings
        self.rules = rules
        # One model per worker, learning from the labels of its partitions.
        self.model = ChurnModel.load(settings.model_file, rules.model)
        self.metrics = Metrics()
        self._read_next: dict[tuple[str, int], int] = {}  # next offset to process, per input partition
        # States changed since the last write: customer -> (state, partition).
        self._unwritten: dict[str, tuple[CustomerState, int]] = {}
        # Processed messages not yet acknowledged: their states are in _unwritten.
        self._held: list[EventT[bytes]] = []
        self._stream: faust.StreamT[bytes] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._writing = asyncio.Lock()
        self.decoded = DecodedStates(settings.state_cache_size)
        self.clock: Clock = make_clock(settings.clock, settings.watermark_idle_s)
        self.index = DueIndex()
        # One source for the agent: the inputs and the ticks, co-partitioned.
        self.source = app.topic(
            *settings.co_partitioned_topics, partitions=settings.partitions, **_RAW_BYTES
        )
        self.ticks = app.topic(settings.topic_sweep_ticks, partitions=settings.partitions, **_RAW_BYTES)
        self.alerts = app.topic(settings.topic_alerts, **_RAW_BYTES)
        self.dead_letters = app.topic(settings.topic_dead_letters, **_RAW_BYTES)
        self.table = app.Table(
            STATE_TABLE,
            default=None,
            partitions=settings.partitions,
            key_type=str,  # JSON-encoded customer id in the changelog
            value_type=bytes,  # CustomerState.to_bytes(), raw
            on_changelog_event=self._on_changelog_event,
        )

    def hold(self, stream: faust.StreamT[bytes], message_event: EventT[bytes]) -> bool:
        """Keep a processed message unacknowledged until its state is written; True when it is time to write."""
        self._held.append(message_event)
        if self._writer is None:  # the first message: the agent's stream is known from now on
            self._stream = stream
            self._writer = asyncio.get_running_loop().create_task(self._keep_writing())
        return len(self._held) >= self.settings.batch_max

    async def _keep_writing(self) -> None:
        """Write every ``batch_wait_s``.

        A plain task, not a Faust timer: at a rebalance or shutdown Faust
        waits for every message to be acknowledged, and its own services are
        stopping then; this keeps writing (and acknowledging) through it.
        """
        while True:
            await asyncio.sleep(self.settings.batch_wait_s)
            await self.write()

    async def stop_writing(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            self._writer = None
        await self.write()

    async def write(self) -> None:
        """Write the changed states, wait until the broker has them, then acknowledge their messages.

        Faust commits only acknowledged offsets. The changelog messages are
        sent and awaited here, not left in Faust's send buffer
        (``table.send_changelog``): the flush before a commit gives up on that
        buffer after 0.1 s without progress, so an offset could be committed
        while its state was still buffered, and a crash then lost the state.
        One write at a time, so a customer's states reach the changelog in order.
        """
        async with self._writing:
            unwritten, self._unwritten = self._unwritten, {}
            held, self._held = self._held, []
            table = self.table
            # Into the table before the first await: the agent reads the table
            # for whatever is no longer in _unwritten.
            encoded = []
            for customer_id, (state, partition) in unwritten.items():
                raw = state.to_bytes()
                table.data[customer_id] = raw
                self.decoded.remember(customer_id, raw, state)
                encoded.append((customer_id, raw, partition))
            try:
                sent = [
                    await table.changelog_topic.send(
                        key=customer_id, value=raw, partition=partition,
                        key_serializer=table.key_serializer, value_serializer=table.value_serializer,
                        callback=table._on_changelog_sent)
                    for customer_id, raw, partition in encoded
                ]
                await asyncio.gather(*sent)
            except BaseException as exc:
                # Not written: held again (newer states of the same customers
                # win), for the next round to retry.
                self._unwritten = unwritten | self._unwritten
                self._held = held + self._held
                if not isinstance(exc, Exception):
                    raise
                log.exception("writing %d changed states failed", len(encoded))
                return
            if self._stream is not None:
                for message_event in held:
                    await self._stream.ack(message_event)

    async def handle(self, message_event: EventT[bytes]) -> None:
        """Process one message; whatever happens, the worker goes on to the next."""
        kind = "tick" if message_event.message.topic == self.settings.topic_sweep_ticks else "event"
        started = time.perf_counter()
        try:
            await self._handle(message_event)
            self.metrics.processing.labels(kind).observe(time.perf_counter() - started)
        except Exception as exc:  # noqa: BLE001 - the worker must not die on a payload
            log.exception("failed on %s[%d]@%d", message_event.message.topic,
                          message_event.message.partition, message_event.message.offset)
            error = f"{type(exc).__name__}: {exc}"[:2000]
            await self._dead_letter(message_event, Rejection(RejectReason.PROCESSING_ERROR, error))

    async def _handle(self, message_event: EventT[bytes]) -> None:
        message = message_event.message
        if message.topic == self.settings.topic_sweep_ticks:
            tick = decode_tick(message.value)
            if isinstance(tick, Rejection):
                await self._dead_letter(message_event, tick)
            else:
                await self._tick(message.key, tick, message.partition)
            return
        source = (message.topic, message.partition)
        self._read_next[source] = message.offset + 1
        decoded = decode_event(message.key, message.value, self.settings.max_message_bytes)
        if isinstance(decoded, Rejection):
            self.clock.observe(source, message.offset, None)
            await self._dead_letter(message_event, decoded)
            return
        # "Future" is judged by the wall clock, whichever clock ages customers:
        # an event clock cannot tell a broken publisher from a partition ahead.
        reference = datetime.now(UTC)
        self.metrics.event_age.observe(max(0.0, (reference - decoded.occurred_at).total_seconds()))
        if is_future(decoded, reference, self.rules):
            error = (f"occurred_at {decoded.occurred_at.isoformat()} is more than "
                     f"{self.rules.state.max_future_hours} h ahead of the wall clock ({reference.isoformat()})")
            self.clock.observe(source, message.offset, None)
            await self._dead_letter(message_event, Rejection(RejectReason.FUTURE_EVENT, error))
            return
        now = self.clock.for_event(decoded.occurred_at)
        transition = apply_event(self._state(decoded.customer_id), decoded, now, self.rules, self.model)
        counted = transition.outcome is not Outcome.DUPLICATE
        self.clock.observe(source, message.offset, decoded.occurred_at if counted else None)
        self.metrics.events.labels(decoded.type, transition.outcome.value).inc()
        await self._take(decoded.customer_id, transition, message.partition)

    async def sweep(self) -> None:
        """Send a tick to each due customer this worker owns; others are not ours to judge."""
        if self.app.rebalancing:
            return
        started = time.perf_counter()
        assignment = self.app.consumer.assignment()
        owned = {tp.partition for tp in assignment if tp.topic == self.settings.topic_sweep_ticks}
        progress = {
            (tp.topic, tp.partition): self._progress(tp)
            for tp in assignment if tp.topic in self.settings.input_topics
        }
        self._export_lag(progress)
        self.metrics.customers.set(len(self.table.data))
        now = self.clock.now(progress)
        if now is None or not owned:
            return
        # Entries of partitions we no longer own are dropped: their new owner
        # rebuilt its own index from the changelog when it took them over.
        due = self.index.pop_due(to_seconds(now), self.settings.sweep_batch)
        sent = 0
        for entry in due:
            if entry.partition in owned:
                # Judged at its due time, not at the sweep's: a sweep runs every few seconds, and on the
                # event clock weeks of history pass between two; a silence that a cancellation ended a
                # few days later must still be seen, as the replay and the backtest see it.
                await self.ticks.send(key=entry.customer_id.encode(), value=encode_tick(to_datetime(entry.due_at)),
                                      partition=entry.partition)
                sent += 1
        self.metrics.swept.inc(sent)
        self.metrics.sweep_duration.observe(time.perf_counter() - started)
        if sent:
            log.info("sweep at %s: %d customers due", now.isoformat(), sent)

    def _export_lag(self, progress: dict[tuple[str, int], Progress]) -> None:
        """Records waiting per input partition (needs a fresh high watermark from the consumer)."""
        for (topic, partition), (highwater, committed) in progress.items():
            if highwater is None:
                continue
            read = self._read_next.get((topic, partition), committed or 0)
            self.metrics.lag.labels(topic, str(partition)).set(max(0, highwater - read))

    def _progress(self, tp: TP) -> Progress:
        consumer = self.app.consumer
        try:
            highwater = consumer.highwater(tp)
        except Exception:  # noqa: BLE001 - not fetched yet, or assignment moving
            highwater = None
        # Faust keeps the group's committed offsets (next to read) here after
        # seeking to them at start-up; there is no public accessor.
        committed = getattr(consumer, "_committed_offset", {}).get(tp)
        return Progress(highwater, committed)

    async def _tick(self, key: bytes | None, now: datetime, partition: int) -> None:
        customer_id = (key or b"").decode("utf-8", "replace")
        state = self._state(customer_id)
        if state is not None:
            await self._take(customer_id, evaluate(state, now, self.rules, self.model), partition)

    async def _take(self, customer_id: str, transition: Transition, partition: int) -> None:
        if transition.outcome is not Outcome.DUPLICATE and transition.state is not None:
            self._unwritten[customer_id] = (transition.state, partition)
            self.index.set(customer_id, transition.state.next_due_at, partition)
            if transition.alerts:
                self.metrics.episodes(customer_id, [e.severity for e in transition.state.episodes.values()])
        # Alerts first: nothing the model does may hold them back or lose them.
        for alert in transition.alerts:
            await self.alerts.send(key=alert.customer_id.encode(), value=alert.model_dump_json().encode())
            self.metrics.alert(alert)
        failed = self.model.absorb(transition.assessed, transition.labelled)
        if failed:
            self.metrics.learning_failures.inc(failed)
        if transition.labelled:
            self.metrics.model(self.model.summary())

    async def checkpoint(self) -> None:
        """Save the model, so a restart does not reset its learning."""
        self.model.save(self.settings.model_file)
        summary = self.model.summary()
        log.info("model checkpoint: %d labels, ROC AUC %s", summary["labels"], summary["roc_auc"])

    def ready(self) -> dict[str, object]:
        """Partitions assigned and table recovery finished: safe to send traffic."""
        app = self.app
        try:
            assignment = app.consumer.assignment()
        except ConsumerNotStarted:  # asked while the worker is still starting
            assignment = set()
        assigned = [tp for tp in assignment if tp.topic in self.settings.input_topics]
        recovered = app.tables.recovery.completed.is_set() and not app.in_recovery
        return {
            "ready": bool(assigned) and recovered and not app.rebalancing,
            "assigned_input_partitions": len(assigned),
            "recovery_complete": recovered,
            "rebalancing": bool(app.rebalancing),
        }

    def owner(self, customer_id: str) -> str | None:
        """The URL of the worker that holds this customer's partition, if known.

        The partition is the one a Java-compatible producer picks for the key
        (murmur2), which is where the customer's events, and so its state, are.
        """
        partition = (murmur2(customer_id.encode()) & 0x7FFFFFFF) % self.settings.partitions
        changelog = self.table.changelog_topic.get_topic_name()
        for host, topics in self.app.router.table_metadata(STATE_TABLE).items():
            if partition in topics.get(changelog, ()):
                return str(host)
        return None

    def summary(self, customer_id: str) -> dict[str, object] | None:
        state = self._state(customer_id)
        if state is None:
            return None
        risk = state.risk
        observation = observe(state, state.last_event_at)
        values = {name: round(value, 4) for name, value in inputs(observation, self.model.feature_set).items()}
        return {
            "customer_id": customer_id,
            "first_seen_at": iso(state.first_seen_at),
            "last_event_at": iso(state.last_event_at),
            "last_login_at": iso(state.last_login_at),
            "plan": state.subscription.plan if state.subscription else None,
            "mrr": state.mrr,
            "cancelled_at": iso(state.cancelled_at),
            "features": values,
            "risk": {
                # Scored now, from what was known at the customer's last event.
                "probability": round(self.model.score(observation).probability, 4),
                "model_ready": self.model.ready,
                "assessed": None if risk is None else risk.assessed,
                "assessed_at": None if risk is None else iso(risk.assessed_at),
                "rank_share": None if risk is None else risk.rank,
            },
            "open_episodes": [
                {"rule": rule.value, "alert_id": e.alert_id, "severity": e.severity.value,
                 "opened_at": iso(e.opened_at), "sequence": e.sequence}
                for rule, e in state.episodes.items()
            ],
            "next_due_at": iso(state.next_due_at),
        }

    def _state(self, customer_id: str) -> CustomerState | None:
        unwritten = self._unwritten.get(customer_id)
        if unwritten is not None:
            return unwritten[0]
        raw = self.table.get(customer_id)
        return self.decoded.decode(customer_id, raw) if raw is not None else None

    async def _dead_letter(self, message_event: EventT[bytes], rejection: Rejection) -> None:
        message = message_event.message
        value = _bounded(message.value)
        record = DeadLetter(
            source_topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key_b64=DeadLetter.encode(_bounded(message.key)),
            value_b64=DeadLetter.encode(value),
            value_size=None if value is message.value else len(message.value or b""),
            reason=rejection.reason,
            error=rejection.error,
            rejected_at=datetime.now(UTC),
        )
        log.warning("rejected %s[%d]@%d: %s: %s", message.topic, message.partition,
                    message.offset, rejection.reason, rejection.error)
        self.metrics.rejected.labels(rejection.reason.value).inc()
        self.metrics.dead_letters.inc()
        await self.dead_letters.send(key=message.key, value=record.model_dump_json().encode())

    async def _on_changelog_event(self, changelog_event: EventT[bytes]) -> None:
        """Rebuild the due index from recovered (or standby) state."""
        raw = changelog_event.value
        if raw is not None:
            state = CustomerState.from_bytes(raw)
            self.index.set(state.customer_id, state.next_due_at, changelog_event.message.partition)
            self.metrics.episodes(state.customer_id, [e.severity for e in state.episodes.values()])


def _bounded(raw: bytes | None) -> bytes | None:
    """What of a rejected key or value goes into its dead letter, which must fit in a Kafka
    message itself: all of it, or the first bytes (the whole stays in its source topic)."""
    return raw if raw is None or len(raw) <= DEAD_LETTER_KEEPS else raw[:DEAD_LETTER_KEEPS]


def faust_app(settings: Settings, web_enabled: bool = True) -> faust.App:
    """The Faust app with churnwatch's settings (the benchmark's bare agent uses it too)."""
    return faust.App(
        settings.app_id,
        broker=settings.faust_broker_url,
        broker_credentials=faust_credentials(settings),
        store=settings.store,
        datadir=str(settings.data_dir),
        autodiscover=False,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
        broker_rebalance_timeout=settings.rebalance_timeout_s,
        producer_max_batch_size=settings.producer_max_batch_size,
        web_enabled=web_enabled,
        web_bind=settings.web_host,
        web_host=settings.canonical_host,
        web_port=settings.web_port,
        web_application_options=web_application_options(settings),
    )


def build_app(settings: Settings, rules: RulesConfig) -> faust.App:
    """The worker's Faust app; built per process, so tests can run several."""
    app = faust_app(settings)
    processor = Processor(app, settings, rules)

    async def process(stream: faust.StreamT[bytes]) -> None:
        manual = stream.noack()  # acknowledged by processor.write, after the state is written
        async for message_event in manual.events():
            await processor.handle(message_event)
            if processor.hold(manual, message_event):
                await processor.write()

    app.agent(processor.source, name="churnwatch.process")(process)
    app.timer(interval=settings.sweep_interval_s, on_leader=False)(processor.sweep)
    app.timer(interval=settings.model_checkpoint_s, on_leader=False)(processor.checkpoint)

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        # The exposition content type has parameters (version, charset), which
        # aiohttp accepts only as a header.
        return web.bytes(generate_latest(processor.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"alive": True})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        report = processor.ready()
        return web.json(report, status=200 if report["ready"] else 503)

    @app.page("/customers/{customer_id}")
    async def customer(web: Any, request: Any, customer_id: str) -> Any:
        if len(customer_id) > MAX_ID_CHARS:
            return web.json({"error": f"customer ids are at most {MAX_ID_CHARS} characters"}, status=400)
        summary = processor.summary(customer_id)
        if summary is not None:
            return web.json(summary)
        owner = processor.owner(customer_id)
        if owner is not None and owner.rstrip("/") != str(app.conf.canonical_url).rstrip("/"):
            # Another worker holds it: answer with its answer.
            return await app.router._route_req(URL(owner), web.web, request)
        return web.json({"error": f"unknown customer {customer_id!r}"}, status=404)

    @app.on_before_shutdown.connect
    async def _write_and_save(app: faust.App, **kwargs: Any) -> None:
        await processor.stop_writing()
        await processor.checkpoint()

    return app
