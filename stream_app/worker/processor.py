"""The worker's moving parts between Kafka and the core, wired together; one per process.

An input event, decoded and put in event-time order (``churnwatch.worker.sequencer``),
is handed to the runner (the same one the replay uses); a message from the
sweep-tick topic is a tick for one customer. Either way the step's alerts are
sent first, then what the model learns, then the metrics count; rejected
messages go to the dead letters. Everything sent goes through the changelog
writer's outbox, confirmed by the broker before the states are written.
Whatever happens, the worker goes on to the next message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

import faust
from faust.types import EventT

from churnwatch.due_index import DueIndex
from churnwatch.http.lookup import CustomerLookup
from churnwatch.http.metrics import Metrics
from churnwatch.model import ChurnModel
from churnwatch.rules import RulesConfig
from churnwatch.rules.clock_math import to_datetime, to_seconds
from churnwatch.rules.labels import pending_since
from churnwatch.rules.state_encoding import outline
from churnwatch.runner import Runner, Step
from churnwatch.http.support_page import render_page
from churnwatch.open_alerts import AlertQuery, OpenAlerts
from churnwatch.scoreboard import Scoreboard
from churnwatch.schemas.dead_letter import RejectReason
from churnwatch.schemas.events import Event
from churnwatch.schemas.intake import Rejection, decode_event
from churnwatch.settings import Settings
from churnwatch.version import product_version
from churnwatch.worker.alert_follower import AlertFollower
from churnwatch.worker.changelog import ChangelogWriter
from churnwatch.worker.clock import Clock, make_clock
from churnwatch.worker.dead_letters import DeadLetters
from churnwatch.worker.labels import (
    LabelFollower,
    PartitionClock,
    encode_assessment,
    encode_churn,
    encode_clock,
    encode_judged,
    encode_label,
)
from churnwatch.worker.faust_private import changelog_sent, keep_newest, on_disk, stored_values
from churnwatch.worker.state_cache import DecodedStates
from churnwatch.worker.sweep import Sweeper, SweepTick, decode_tick
from churnwatch.worker.versions import WriteVersions, version_of

log = logging.getLogger(__name__)

STATE_TABLE = "customer-state"
_RAW_BYTES: dict[str, Any] = {
    "key_type": bytes,
    "value_type": bytes,
    "key_serializer": "raw",
    "value_serializer": "raw",
}


class Processor:
    """Topics, the state table and the parts that use them."""

    def __init__(self, app: faust.App, settings: Settings, rules: RulesConfig) -> None:
        self.app = app
        self.settings = settings
        # One model for the group: every worker learns every label, from the labels topic.
        self.model = ChurnModel.load(settings.model_file, rules.model, settings.model_start)
        self.metrics = Metrics()
        self.outcomes_config = rules.outcomes
        self.scoreboard = Scoreboard.load(settings.scoreboard_file)
        self.metrics.scoreboard(self.scoreboard.report(), self.outcomes_config)
        # One source for the agent: the inputs and the ticks, co-partitioned.
        self.source = app.topic(*settings.co_partitioned_topics, partitions=settings.partitions, **_RAW_BYTES)
        ticks = app.topic(settings.topic_sweep_ticks, partitions=settings.partitions, **_RAW_BYTES)
        self.alerts = app.topic(settings.topic_alerts, **_RAW_BYTES)
        self.labels = app.topic(settings.topic_labels, partitions=1, **_RAW_BYTES)
        self.open_alerts = OpenAlerts.load(settings.open_alerts_file)
        self.alert_follower = AlertFollower(settings, self.open_alerts)
        self.follower = LabelFollower(
            settings, self.model, self.scoreboard, on_learned=self._learned,
            on_counted=lambda: self.metrics.scoreboard(self.scoreboard.report(), self.outcomes_config))
        self.table = app.Table(
            STATE_TABLE,
            default=None,
            partitions=settings.partitions,
            key_type=str,  # JSON-encoded customer id in the changelog
            value_type=bytes,  # CustomerState.to_bytes(), framed with its version (churnwatch.worker.versions)
        )
        keep_newest(self.table, lambda value, current: version_of(value) >= version_of(current), self._recovering)
        self.states = ChangelogWriter(self.table, settings.batch_max, settings.batch_wait_s,
                                      DecodedStates(settings.state_cache_size), changelog_sent(self.table),
                                      WriteVersions(lambda: app.consumer_generation_id))
        self.table.on_recover(self._recovered)
        app.on_partitions_revoked.connect(self._rebalancing)
        self.clock: Clock = make_clock(settings.clock, settings.watermark_idle_s)
        self.index = DueIndex()
        self._newest_recovered: dict[int, int] = {}  # partition -> the newest event its recovered states applied
        self.runner = Runner(rules, self.model, self.states, self.index, self.clock)
        self.sweeper = Sweeper(app, settings, self.clock, self.index, ticks, self.metrics, self.model.covers)
        self.dead_letters = DeadLetters(app.topic(settings.topic_dead_letters, **_RAW_BYTES), self.metrics,
                                        self.states.outbox)
        self._labels_logged: object = None
        self._version_swept: int | None = None
        self._sweeping: asyncio.Task[None] | None = None
        self._sweep_when_ticked = False
        self.lookup = CustomerLookup(self.states.get, self.model, settings.partitions,
                                     self.table.changelog_topic.get_topic_name,
                                     lambda: self.app.router.table_metadata(STATE_TABLE), self._clock_time)

    async def handle(self, message_event: EventT[bytes], decoded: Event | SweepTick | Rejection | None = None,
                     late: bool = False) -> None:
        """Process one message (``decoded`` already, or None; ``late``: an event after a later one of its
        partition); whatever happens, the worker goes on to the next."""
        message = message_event.message
        kind = "tick" if message.topic == self.settings.topic_sweep_ticks else "event"
        started = time.perf_counter()
        try:
            if kind == "tick":
                await self._tick(message, decoded if isinstance(decoded, SweepTick | Rejection)
                                 else decode_tick(message.value))
            else:
                if decoded is None or isinstance(decoded, SweepTick):
                    decoded = decode_event(message.key, message.value, self.settings.max_message_bytes)
                if late:
                    self.metrics.late.labels(message.topic).inc()
                await self._event(message, decoded)
            self.metrics.processing.labels(kind).observe(time.perf_counter() - started)
        except Exception as exc:  # noqa: BLE001 - the worker must not die on a payload
            log.exception("failed on %s[%d]@%d", message.topic, message.partition, message.offset)
            error = f"{type(exc).__name__}: {exc}"[:2000]
            await self.dead_letters.send(message, Rejection(RejectReason.PROCESSING_ERROR, error), datetime.now(UTC))

    async def _event(self, message: Any, decoded: Event | Rejection) -> None:
        self.sweeper.read(message.topic, message.partition, message.offset)
        # "Future" is judged by the wall clock, whichever clock ages customers.
        reference = datetime.now(UTC)
        if not isinstance(decoded, Rejection):
            self.metrics.event_age.observe(max(0.0, (reference - decoded.occurred_at).total_seconds()))
        step = self.runner.event(decoded, reference, (message.topic, message.partition), message.offset,
                                 message.partition)
        if step.rejection is not None:
            await self.dead_letters.send(message, step.rejection, reference)
            return
        assert step.event is not None and step.transition is not None
        self.metrics.events.labels(step.event.type, step.transition.outcome.value).inc()
        self._keep_aside(step, message.partition)
        await self._deliver(step)

    async def _tick(self, message: Any, tick: SweepTick | Rejection) -> None:
        if isinstance(tick, Rejection):
            await self.dead_letters.send(message, tick, datetime.now(UTC))
            return
        if tick.clock:  # the ticks before it are processed: sent once the states they changed are confirmed
            self.states.after_write(self.labels, key=b"", partition=0,
                                    value=encode_clock(PartitionClock(message.partition, to_seconds(tick.now))))
            return
        customer_id = (message.key or b"").decode("utf-8", "replace")
        step = self.runner.tick(customer_id, tick.now, message.partition, tick.until)
        self._keep_aside(step, message.partition)
        await self._deliver(step)
        self.sweeper.ticked(message.partition, customer_id)  # after what it publishes is sent
        if self._sweep_when_ticked and not self.sweeper.ticking:
            # The ticks a new version sent are processed: their snapshots are scored, so the clocks can move.
            self._sweep_when_ticked = False
            self._sweep_soon()

    def _keep_aside(self, step: Step, partition: int) -> None:
        """A customer with a snapshot waiting for its model version waits aside, not in the due index."""
        if step.changed and step.transition is not None and step.transition.state is not None:
            self.sweeper.wait(step.customer_id, partition, pending_since(step.transition.state))

    async def _deliver(self, step: Step) -> None:
        # Alerts first: nothing the model does may hold them back or lose them.
        for alert in step.alerts:
            await self.states.outbox.send(self.alerts, key=alert.customer_id.encode(),
                                          value=alert.model_dump_json().encode())
            self.metrics.alert(alert)
        if step.alerts and step.changed:
            assert step.transition is not None and step.transition.state is not None
            self.metrics.episodes(step.customer_id, [e.severity for e in step.transition.state.episodes.values()])
        t = step.transition
        if t is None:
            return
        # Labels, assessments, verdicts and churns to every worker's model and scoreboard (this one's too),
        # through the labels topic (churnwatch.worker.labels).
        await self._publish(step.customer_id, [
            *map(encode_label, t.labelled), *map(encode_assessment, t.assessed), *map(encode_judged, t.judged),
            *map(encode_churn, t.churns)])

    async def _publish(self, customer_id: str, records: list[bytes]) -> None:
        for value in records:
            try:
                await self.states.outbox.send(self.labels, key=customer_id.encode(), value=value, partition=0)
            except Exception:  # noqa: BLE001 - a label or verdict lost costs one example or count, never the alerts
                log.exception("publishing to the labels topic for %s failed", customer_id)
                self.metrics.learning_failures.inc()

    async def sweep(self) -> None:
        await self.sweeper.sweep(self._customers())

    def _learned(self) -> None:
        """The follower took labels, or made a week's version: export it, and sweep at once for a new version.

        Snapshots waiting for that version are scored at the next sweep, and
        each version waits for them: sweeping now rather than at the next
        interval, and again once the ticks it sent are processed, lets a
        worker reading a backlog move week by week at the pace of the topics,
        not of the timer.
        """
        self.metrics.model(self.model.summary())
        if self.model.learned_until != self._version_swept:
            self._version_swept = self.model.learned_until
            self._sweep_when_ticked = True
            self._sweep_soon()

    def _sweep_soon(self) -> None:
        if self._sweeping is None or self._sweeping.done():
            self._sweeping = asyncio.get_running_loop().create_task(self.sweep())

    def _customers(self) -> int:
        if on_disk(self.table):  # counted at recovery, then as the store gains customers
            return sum(self.states.stored.values())
        return len(self.table.data)

    def outcomes(self) -> dict[str, object]:
        """``GET /rules``: the group's alert outcomes by rule, as this worker has read them from the labels topic."""
        return {"worker": self.settings.canonical_host, "horizon_days": self.outcomes_config.horizon_days,
                "precision_floor": self.outcomes_config.precision_floor, **self.scoreboard.report()}

    def support_page(self, query: AlertQuery, parameters: dict[str, str]) -> str:
        """``GET /``: the open alerts, the rules' live precision and the model's gate, on one page."""
        return render_page(self.open_alerts.answer(query), self.outcomes(), self.model.summary(),
                           self.model.config.auc_floor, parameters)

    async def checkpoint(self) -> None:
        """Save the model, the alert outcomes and the open alerts, so a restart resets none of them."""
        self.model.save(self.settings.model_file)
        self.scoreboard.save(self.settings.scoreboard_file)
        self.open_alerts.save(self.settings.open_alerts_file)
        self.dead_letters.log.flush_if_due()
        summary = self.model.summary()
        if summary["labels"] != self._labels_logged:  # said when it changed, not every minute
            self._labels_logged = summary["labels"]
            log.info("model checkpoint: %d labels, ROC AUC %s", summary["labels"], summary["roc_auc"])

    def _clock_time(self) -> int | None:
        """The time a lookup answers as of: wall time, or on the event clock the time the last sweep judged at."""
        if self.settings.clock == "wall":
            return to_seconds(datetime.now(UTC))
        return self.sweeper.swept_to

    async def announce(self) -> None:
        """One line at start with the settings in force (secrets hidden), so a log says what ran."""
        shown = self.settings.model_dump(mode="json")
        log.info("churnwatch %s starting with settings %s", product_version(), json.dumps(shown, sort_keys=True),
                 extra={"settings": shown})

    def _recovering(self, applied: list[EventT[bytes]]) -> None:
        """Rebuild the due index from the recovered (or standby) states the table took."""
        for changelog_event in applied:
            raw = changelog_event.value
            if raw is not None:
                self._index(raw, changelog_event.message.partition)

    async def _rebalancing(self, sender: Any, revoked: Any, **kwargs: Any) -> None:
        self.states.rebalancing()

    async def _recovered(self) -> None:
        """After recovery: the states confirmed meanwhile back in the table, then the due index from what it holds."""
        topic = self.table.changelog_topic_name
        active = {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == topic}
        for _, raw, partition in self.states.recovered(active):
            self._index(raw, partition)
        if on_disk(self.table):
            await self._index_stored_states()
        for partition, at in self._newest_recovered.items():
            self.clock.recovered([(topic, partition) for topic in self.settings.input_topics], to_datetime(at))

    async def _index_stored_states(self) -> None:
        """Rebuild the due index from the states kept on disk (a restart read only the changelog's tail)."""
        started = time.perf_counter()
        # Counted into the writer's own counter, so a customer new to the store during the scan is not lost
        # (one the scan also reaches is counted twice: the gauge may run a few high, never low).
        stored = self.states.stored
        stored.clear()
        scanned = 0
        async for partition, raw in stored_values(self.table):
            stored[partition] += 1
            scanned += 1
            self._index(raw, partition)
        log.info("due index rebuilt from %d stored states in %.1f s", scanned, time.perf_counter() - started)

    def _index(self, raw: bytes, partition: int) -> None:
        """Index a recovered state, and keep the newest event its partition's states applied (for the clock)."""
        found = outline(raw)  # not the whole state: a restore reads every customer's
        newest = self._newest_recovered
        if found.last_event_at is not None and found.last_event_at > newest.get(partition, found.last_event_at - 1):
            newest[partition] = found.last_event_at
        if self.states.pending(found.customer_id):
            return  # its newer state set the index already
        self.index.set(found.customer_id, found.next_due_at, partition)
        self.sweeper.wait(found.customer_id, partition, found.pending_since)
        self.metrics.episodes(found.customer_id, list(found.open_severities))
