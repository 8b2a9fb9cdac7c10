"""The private Faust APIs the worker needs, in one place, each with why.

faust-streaming offers no public way to do these; they are read here, and
nowhere else, so an upgrade that moves one breaks one small module (and
``pyproject.toml`` holds ``faust-streaming`` below its next minor version
until they are checked again). Checked against 0.15.3, the pinned version.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import faust
from faust.types import TP
from yarl import URL

log = logging.getLogger(__name__)


def committed_offset(consumer: Any, tp: TP) -> int | None:
    """The group's committed offset (next to read) of ``tp``, as the consumer sought to it at start-up.

    Why: the event clock needs it to know whether a partition it has not read
    from yet still has records waiting; Faust keeps it in
    ``Consumer._committed_offset`` and has no accessor.
    """
    offsets: dict[TP, int] = getattr(consumer, "_committed_offset", {})
    return offsets.get(tp)


def _once_assigned(app: faust.App, flag: str, install: Callable[[Any], None]) -> None:
    """Run ``install(consumer)`` at the first assignment (Faust makes its consumer when the app starts)."""
    async def wrap(sender: Any, assigned: Any, **kwargs: Any) -> None:
        consumer = app.consumer
        if not getattr(consumer, flag, False):
            install(consumer)
            setattr(consumer, flag, True)

    app.on_partitions_assigned.connect(wrap)


def rewind_uncommitted(app: faust.App, topics: frozenset[str]) -> None:
    """After each seek to the committed offsets, a partition of ``topics`` the group never committed goes back to
    its start.

    Why: Faust drops records it has fetched when a rebalance or a pause cuts
    their delivery short (``Consumer.getmany``, ``_drain_messages``) and counts
    on its next seek to the committed offsets (``Consumer.perform_seek``) to
    fetch them again. A partition with no committed offset is not sought, so
    those records were never processed: a worker that took over a partition
    its killed owner had never committed, or that started while events waited
    in a partition no worker had read, never read them, and its sweep waited
    for them for ever. Reading such a partition from its start again repeats
    at most what was processed and not committed, which the offsets each
    state records make harmless. The seek happens in Faust's recovery, after the assignment
    signal, so the wrapper is put in place there.
    """
    def install(consumer: Any) -> None:
        seek_to_committed = consumer.perform_seek

        async def perform_seek() -> None:
            await seek_to_committed()
            uncommitted = sorted(tp for tp in consumer.assignment()
                                 if tp.topic in topics and not consumer._committed_offset.get(tp))
            if uncommitted:  # in the client's own thread, as Faust's recovery seeks (see read_again)
                await consumer.seek_wait(dict.fromkeys(uncommitted, 0))
            if uncommitted:
                log.info("%d partitions the group has not committed are read from their start",
                         len(uncommitted))

        consumer.perform_seek = perform_seek

    _once_assigned(app, "_churnwatch_rewinds_uncommitted", install)


def control_fetching(app: faust.App, held: Callable[[], set[tuple[str, int]]],
                     on_fetched: Callable[[dict[tuple[str, int], list[int]]], None]) -> None:
    """Fetch no records while the app's flow is stopped, nor for the partitions ``held()`` names (topic,
    partition) until it names them no more; tell ``on_fetched`` the offsets the client hands Faust, per
    partition, each time it hands records over (with none, too).

    Why, the flow: Faust's stream drops a message it takes while the app's
    flow control is suspended, or that was fetched in an earlier consumer
    generation (``Stream._py_aiter``: "Skipping message"), counting on the
    seek to the committed offsets after a rebalance to fetch it again; and
    its commit lets an acknowledged offset one past the committed one
    through (``Consumer._new_offset``), so a dropped message the seek does
    not bring back is committed past. Seen in a broker test on Apache Kafka:
    a subscription event at offset 2 that the client had handed over never
    reached the agent, which read offsets 0, 1 and 3 on. Fetching nothing
    while the flow is suspended keeps the first cause away; the merge finds
    any message that still goes missing and has its partition read again
    (``churnwatch.worker.merge``).

    Why, the held partitions: the worker's merge by event time keeps messages of a partition read
    ahead of the others; it must stop fetching that partition, or a backlog
    fills the memory. Faust's ``pause_partitions`` cannot do it safely: it
    also takes the partition out of the set Faust checks while it hands out
    a batch already fetched (``Consumer.getmany``), so the rest of that
    batch is dropped while the client's position has moved past it; the
    next message then looks like a gap (``_drain_messages`` adds one) and
    the commit skips the dropped ones. Here the partitions are left out of
    the set handed to the client for the next fetch only
    (``Consumer._getmany``): the client keeps what it has buffered for them,
    and fetches no more, until they are asked for again.

    Why, a fetch that outlives the flow: the client waits up to the
    fetch's timeout for records, for the partitions Faust named when it asked
    (Faust passes its own set, which a rebalance empties meanwhile, and an
    empty set means every partition to the client). Records handed over
    once the flow has stopped, or in a later consumer generation, are
    dropped by Faust, and its seek to the committed offsets does not bring
    back a partition with none: seen on Apache Kafka, a takeover's recovery
    sought the changelog partitions to their start, a fetch begun before the
    rebalance took every changelog record and Faust dropped them, so the
    recovery waited for ever. Here the client is asked for a copy of the
    set, and records that would be dropped are given back (``unfetch``).

    Why, the offsets handed over: the merge must know what is on its way to
    the agent (in Faust's queues) to tell a partition read to its end from
    one whose last records have not arrived yet, and a message Faust dropped
    from one still coming.
    """
    def install(consumer: Any) -> None:
        fetch = consumer._getmany

        def flowing() -> bool:
            return bool(app.flow_control.is_active() and consumer.flow_active)

        async def getmany(active_partitions: Any, timeout: float) -> Any:
            # A copy: Faust's set changes while the client waits, and an empty one asks it for every partition.
            holding = held() if flowing() else None
            wanted = frozenset() if holding is None else frozenset(
                tp for tp in active_partitions if (tp.topic, tp.partition) not in holding)
            if not wanted:
                await asyncio.sleep(min(timeout, 0.05))
                return {}
            generation = app.consumer_generation_id
            records = await fetch(active_partitions=wanted, timeout=timeout)
            if records and (not flowing() or app.consumer_generation_id != generation):
                await unfetch(consumer, records)
                return {}
            on_fetched({(tp.topic, tp.partition): [record.offset for record in batch]
                        for tp, batch in records.items()})
            return records

        consumer._getmany = getmany

    _once_assigned(app, "_churnwatch_controls_fetching", install)


async def unfetch(consumer: Any, records: Any) -> None:
    """The client hands ``records`` (a fetch's, per partition) over again: each partition goes back to its first
    record, unless something moved it back since (a seek of Faust's recovery or to the committed offsets).

    Why: see ``control_fetching``. The check and the seek run in the client's
    thread, where every other seek runs, so none comes between them.
    """
    async def rewind() -> None:
        client = consumer._thread._ensure_consumer()
        assignment = client._subscription.subscription.assignment
        for tp, batch in records.items():
            if not batch or assignment is None or tp not in assignment.tps:
                continue
            state = assignment.state_value(tp)
            if state.has_valid_position and state.position > batch[-1].offset:
                client.seek(tp, batch[0].offset)

    await consumer._thread.call_thread(rewind)
    log.info("a fetch outlived the flow: %d partitions are read again from its first records", len(records))


def fetch_wait(app: faust.App, wait_ms: int) -> None:
    """The longest a fetch of the worker's consumer waits at the broker for records: ``wait_ms``.

    Why: the merge lets an event go on only once every other partition of
    its group has been fetched since the event came (``churnwatch.worker.merge``).
    The Kafka client keeps one fetch in flight per broker and leaves out of
    it the partitions whose records it still holds, so a fetch of quiet
    partitions only waits at the broker until one of them gets a record or
    the wait ends, and an event waiting on a busy partition left out of that
    fetch waits as long. Faust passes aiokafka a fixed 1,500 ms
    (``AIOKafkaConsumerThread._create_worker_consumer``) and has no setting;
    with it a failed payment's alert took up to a second and a half at a
    steady load. The client's fetcher builds each request from its own
    ``_fetch_max_wait_ms``, so setting it once the client exists is enough.
    """
    def install(consumer: Any) -> None:
        client = consumer._thread._ensure_consumer()
        client._fetch_max_wait_ms = wait_ms
        client._fetcher._fetch_max_wait_ms = wait_ms

    _once_assigned(app, "_churnwatch_fetch_wait", install)


def commit_acknowledged(app: faust.App, topics: frozenset[str]) -> Callable[[Any], None]:
    """Commit a partition of ``topics`` up to the newest message the worker acknowledged, and no further;
    returns what the worker calls with each message (the stream's event) it acknowledges.

    Why: Faust acknowledges, by itself, a message its stream skips (one taken
    while the app's flow is stopped, or fetched in an earlier consumer
    generation: ``Stream._py_aiter`` acks a ``skipped_value``), and counts as
    done the offsets it takes for gaps in what it read (``Consumer._add_gap``,
    ``_new_offset``). So a message it dropped was committed unprocessed: seen
    in ``make chaos``, a subscription event that no state ever applied, its
    partition committed past it while the worker still waited for it to come
    again. The worker acknowledges a partition's messages in offset order,
    each once its state is written, and never one past a message handed over
    and not processed (``churnwatch.worker.merge``), so the newest offset it
    acknowledged is exactly how far it is done; offsets the Kafka client
    never hands over (transaction markers) are passed as the next message
    acknowledged passes them. Faust's own record is emptied at each commit.
    """
    newest: dict[TP, int] = {}

    def acknowledged(event: Any) -> None:
        message = event.message
        tp = message.tp
        if message.offset > newest.get(tp, -1):
            newest[tp] = message.offset

    def install(consumer: Any) -> None:
        decide = consumer._new_offset

        def new_offset(tp: TP) -> int | None:
            if tp.topic not in topics:
                return decide(tp)
            consumer._acked[tp].clear()  # Faust's, its skips included: never counted here
            consumer._acked_index[tp].clear()
            consumer._gap[tp].clear()
            done = newest.get(tp)
            committed = consumer._committed_offset[tp]
            if done is None or (committed is not None and done + 1 <= committed):
                return None
            return done + 1

        consumer._new_offset = new_offset

    async def forget(sender: Any, revoked: Any, **kwargs: Any) -> None:
        for tp in revoked:  # read again by whoever takes it, from its committed offset
            newest.pop(tp, None)

    _once_assigned(app, "_churnwatch_commits_acknowledged", install)
    app.on_partitions_revoked.connect(forget)
    return acknowledged


def let_go(app: faust.App, message: Any) -> None:
    """Faust stops waiting for ``message`` (one of its messages) to be acknowledged: it will be read again.

    Why: Faust tracks every message its stream handed out until it is
    acknowledged (``Consumer._unacked_messages``) and waits for all of them
    at a rebalance or a stop. A message the worker let go unprocessed (a
    repeat, or one past a gap being read again) must not hold that up, and
    must not be acknowledged (its offset would be committed unprocessed).
    """
    app.consumer._unacked_messages.discard(message)


async def read_again(app: faust.App, source: tuple[str, int], offset: int) -> None:
    """Have the client hand ``source`` over again from ``offset``.

    Why: Faust's ``Consumer.seek_wait`` is what its own recovery uses: the
    seek runs in the client's thread (``Consumer.seek`` would move the
    client from another thread), it waits until the position is set, and it
    moves Faust's record of what it has read, so the messages come again.
    """
    await app.consumer.seek_wait({TP(*source): offset})


def before_waiting_for_acks(app: faust.App, callback: Callable[[], list[Any]]) -> None:
    """Call ``callback`` each time Faust is about to wait for every message in flight to be acknowledged;
    the messages it returns (Faust's messages) are let go, unacknowledged.

    Why: at a rebalance (and at shutdown) Faust waits until every message it
    handed out is acknowledged (``Consumer.wait_empty``), and only then lets
    the rebalance go on. Messages the merge holds, not processed, must not be
    acknowledged (their offsets would be committed unprocessed): they are
    dropped, to be read again from the committed offsets after the
    rebalance. Faust tracks what it waits for in ``_unacked_messages``; the
    dropped ones leave it, or the rebalance would wait for ever.
    """
    def install(consumer: Any) -> None:
        wait_empty = consumer.wait_empty

        async def wait_for_acks() -> None:
            for message in callback():
                let_go(app, message)
            await wait_empty()

        consumer.wait_empty = wait_for_acks

    _once_assigned(app, "_churnwatch_drops_before_waiting", install)


class ClientView:
    """What the Kafka client under Faust knows of each partition it fetches (``churnwatch.worker.merge.FetchView``).

    Why: whether a partition may still hold an event older than another's
    head is known only to the client: the end offset and the time of the
    fetch that told it (aiokafka's ``TopicPartitionState.highwater`` and
    ``timestamp``), and how far it has fetched (its position); Faust passes
    none of them on. Read from the client's thread without a lock: single
    attribute reads, and a stale answer only makes the merge wait longer.
    """

    def __init__(self, app: faust.App) -> None:
        self.app = app

    def _state(self, source: tuple[str, int]) -> Any:
        try:
            client = self.app.consumer._thread._ensure_consumer()
            assignment = client._subscription.subscription.assignment
            return None if assignment is None else assignment.state_value(TP(*source))
        except Exception:  # noqa: BLE001 - not started, or the assignment is moving: not known
            return None

    def highwater(self, source: tuple[str, int]) -> int | None:
        state = self._state(source)
        return None if state is None else state.highwater

    def polled_at(self, source: tuple[str, int]) -> int | None:
        state = self._state(source)
        return None if state is None else state.timestamp

    def position(self, source: tuple[str, int]) -> int | None:
        state = self._state(source)
        return state._position if state is not None and state.has_valid_position else None

    def committed(self, source: tuple[str, int]) -> int | None:
        return committed_offset(self.app.consumer, TP(*source))


def fetch_state(consumer: Any, tp: TP) -> str:
    """How Faust and its Kafka client stand on fetching ``tp``, in words, for a log line.

    Why: when the sweep waits on a partition that has records no one reads,
    the cause is in the consumer's private state (Faust's active and paused
    partitions, the client's position and status), which nothing public shows.
    """
    try:
        active = consumer._active_partitions
        told = [f"faust: {'active' if active is None or tp in active else 'not active'}"
                f"{', paused' if tp in consumer._paused_partitions else ''}"
                f"{', buffer full' if tp in consumer._buffered_partitions else ''}"
                f", read offset {consumer._read_offset.get(tp)}"]
        client = consumer._thread._ensure_consumer() if hasattr(consumer, "_thread") else None
        if client is not None:
            state = client._subscription.subscription.assignment.state_value(tp)
            told.append(f"client: position {state._position}, status {state._status.name}, "
                        f"{'paused' if state.paused else 'fetching'}, high watermark {state.highwater}")
        return "; ".join(told)
    except Exception as exc:  # noqa: BLE001 - a log line's detail, never worth a failure
        return f"fetch state unknown ({exc!r})"


def keep_newest(table: faust.Table, newer: Callable[[bytes, bytes], bool],
                on_kept: Callable[[list[Any]], None]) -> None:
    """Recovery applies a changelog record only if its value is not older (``newer(value, current)``) than the
    customer's value already in the table; ``on_kept`` hears of the records applied.

    Why: Faust's recovery applies changelog records in their order
    (``Table.apply_changelog_batch``, a batch at a time), so a late write of
    a worker that had lost the partition would put an older state over the
    newer one written meanwhile. The table's own method is replaced on this
    table, so each batch is filtered first: per customer, against what the
    table holds and what the batch applied before.
    """
    apply = table.apply_changelog_batch

    def apply_newest(batch: Any) -> None:
        newest: dict[Any, bytes] = {}
        kept = []
        for event in batch:
            key, value = event.key, event.value
            current = newest[key] if key in newest else stored_value(table, key, event.message.partition)
            if value is not None and current is not None and not newer(value, current):
                continue
            if value is not None:
                newest[key] = value
            kept.append(event)
        if len(kept) < len(batch):
            log.info("recovery kept %d of %d changelog records: the others were older than the states "
                     "already read", len(kept), len(batch))
        apply(kept)
        on_kept(kept)

    table.apply_changelog_batch = apply_newest


def changelog_sent(table: faust.Table) -> Callable[..., Any]:
    """The table's own callback for a changelog message the broker confirmed.

    Why: the worker sends its changelog messages itself and awaits them (see
    ``changelog.ChangelogWriter.write``); Faust's table still has to hear of
    each one (``Table._on_changelog_sent``) to keep its offsets for standby
    replicas and recovery right.
    """
    callback: Callable[..., Any] = table._on_changelog_sent
    return callback


async def answer_from(app: faust.App, owner: str, web: Any, request: Any) -> Any:
    """Forward an HTTP request to the worker at ``owner`` and return its answer.

    Why: a customer lookup must answer from the worker holding the customer's
    partition; Faust's table-routing views do exactly this with
    ``Router._route_req``, which has no public name.
    """
    return await app.router._route_req(URL(owner), web, request)


def on_disk(table: faust.Table) -> bool:
    """Whether the table keeps its data in Faust's on-disk store (RocksDB, one database per partition)."""
    return hasattr(table.data, "_db_for_partition")


def store(table: faust.Table, key: str, value: bytes, partition: int) -> bool:
    """Put ``value`` into the table's local store, in ``partition``'s part; True when ``key`` is new on disk.

    Why: the changelog writer writes outside the stream's iteration, where
    Faust's on-disk store cannot tell which partition a key belongs to (its
    ``Store._set`` reads it from the current event, and asserts there is one).
    The memory store needs no partition, and counts its keys itself (so
    always False: nothing to count); it is told the key's partition all the
    same (``Store._key_partition``, otherwise filled only by recovery), so a
    rebalance that takes the partition away drops the key from this worker.
    """
    data = table.data
    if not on_disk(table):
        data[key] = value
        key_partition = getattr(data, "_key_partition", None)
        if key_partition is not None:
            key_partition[key] = partition
        return False
    raw_key = data._encode_key(key)
    db = data._db_for_partition(partition)
    new = db.get(raw_key) is None
    data._key_index[raw_key] = partition
    db.put(raw_key, data._encode_value(value))
    return new


def stored_value(table: faust.Table, key: str, partition: int | None) -> bytes | None:
    """The table's value of ``key``, looked up in ``partition``'s part of the store (None: wherever it is).

    Why: Faust's on-disk store looks a key up in the partition of the
    stream's current event (``Store._get`` reads ``current_event()``), not
    the key's. The worker processes messages in event-time order, not in the
    order the agent took them, so the current event is often another
    partition's, and the lookup found nothing: the customer's state started
    afresh, its history lost (seen in ``make chaos`` with the on-disk store).
    The memory store keeps one mapping for all partitions.
    """
    data = table.data
    if partition is None or not on_disk(table):
        value: bytes | None = data.get(key)
        return value
    raw = data._db_for_partition(partition).get(data._encode_key(key))
    return None if raw is None else data._decode_value(raw)


async def stored_values(table: faust.Table, every: int = 5000) -> AsyncIterator[tuple[int, bytes]]:
    """(partition, value) of every key the on-disk store holds for the worker's active partitions.

    Why: a restart on disk reads only the changelog written since the
    store's last write, so state kept from before never passes through the
    table's ``on_changelog_event``; whatever is built from every state (the
    sweep's due index) has to read the store itself. Yields to the loop every
    ``every`` values, so a large store does not stall the consumer's heartbeats.
    """
    data = table.data
    topic = table.changelog_topic_name
    active = {tp.partition for tp in table.app.assignor.assigned_actives() if tp.topic == topic}
    for partition, db in list(data._dbs.items()):
        if partition not in active:
            continue
        for count, (_, value) in enumerate(data._visible_items(db), start=1):
            yield partition, value
            if count % every == 0:
                await asyncio.sleep(0)
