"""One test per entry of ``churnwatch.worker.faust_private``: each pins the Faust (or aiokafka) internal it reads.

A Faust upgrade that moves one of them fails here, by name, rather than in a
takeover test one run in thirty. Real Faust objects throughout (an app, its
consumer, a table, its store), built without a broker: only the Kafka
client underneath is a stand-in where it would need one.
"""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord
from faust.types import TP

from churnwatch.worker import faust_private
from churnwatch.worker.app import faust_app
from churnwatch.settings import Settings


def _app(tmp_path: Path, store: str = "memory://") -> faust.App:
    return faust_app(Settings(app_id="pins", data_dir=tmp_path, store=store), web_enabled=False)


class Thread:
    """Stands in for Faust's consumer thread (the aiokafka client's); records what Faust asks of it."""

    def __init__(self, records: dict[TP, list[Any]] | None = None, client: AIOKafkaConsumer | None = None) -> None:
        self.records = records or {}
        self.client = client
        self.asked: list[set[TP] | None] = []
        self.sought: list[tuple[TP, int]] = []
        self.committed: dict[TP, int] = {}

    async def getmany(self, active_partitions: set[TP] | None, timeout: float) -> dict[TP, list[Any]]:
        self.asked.append(None if active_partitions is None else set(active_partitions))
        return {tp: rs for tp, rs in self.records.items() if active_partitions is None or tp in active_partitions}

    async def seek_to_committed(self) -> dict[TP, int]:
        return dict(self.committed)

    def seek(self, tp: TP, offset: int) -> None:
        self.sought.append((tp, offset))

    async def seek_wait(self, partitions: dict[TP, int]) -> None:
        self.sought.extend(partitions.items())

    def highwater(self, tp: TP) -> int:
        return 100

    def _ensure_consumer(self) -> AIOKafkaConsumer | None:
        return self.client

    async def call_thread(self, fun: Any, *args: Any, **kwargs: Any) -> Any:
        return await fun(*args, **kwargs)


def _record(tp: TP, offset: int) -> ConsumerRecord:
    return ConsumerRecord(tp.topic, tp.partition, offset, 0, 0, b"k", b"v", None, 1, 1, ())


async def _assigned(app: faust.App, assigned: set[TP]) -> Any:
    """The assignment signal, as Faust sends it after a rebalance: the entries install their wrappers then."""
    await app.on_partitions_assigned.send(assigned)
    return app.consumer


def test_committed_offset_reads_the_consumers_record_of_committed_offsets(tmp_path: Path) -> None:
    app = _app(tmp_path)
    tp = TP("customer-usage", 1)
    assert faust_private.committed_offset(app.consumer, tp) is None
    app.consumer._committed_offset[tp] = 41
    assert faust_private.committed_offset(app.consumer, tp) == 41


def test_rewind_uncommitted_seeks_the_partitions_never_committed_to_their_start(tmp_path: Path) -> None:
    app = _app(tmp_path)
    done, never = TP("customer-usage", 0), TP("customer-usage", 1)
    faust_private.rewind_uncommitted(app, frozenset({"customer-usage"}))

    async def scenario() -> list[tuple[TP, int]]:
        consumer = await _assigned(app, {done, never})
        consumer._thread = thread = Thread()
        thread.committed = {done: 12}
        thread.assignment = lambda: {done, never}
        await consumer.perform_seek()
        assert consumer._committed_offset[done] == 12
        return thread.sought

    assert asyncio.run(scenario()) == [(never, 0)]


def test_control_fetching_leaves_held_partitions_out_and_tells_what_the_client_handed_over(tmp_path: Path) -> None:
    """Faust's getmany asks ``_getmany(active_partitions=, timeout=)``; a held partition's records stay unfetched."""
    app = _app(tmp_path)
    usage, payments = TP("customer-usage", 0), TP("payment-failures", 0)
    held: set[tuple[str, int]] = {("customer-usage", 0)}
    handed: list[dict[tuple[str, int], list[int]]] = []
    faust_private.control_fetching(app, lambda: held, handed.append)

    async def scenario() -> tuple[list[tuple[TP, int]], list[set[TP] | None]]:
        consumer = await _assigned(app, {usage, payments})
        consumer._thread = thread = Thread({usage: [_record(usage, 0)], payments: [_record(payments, 7)]})
        consumer._set_active_tps({usage, payments})
        app.flow_control.resume()
        got = [(tp, message.offset) async for tp, message in consumer.getmany(timeout=0.01)]
        held.clear()
        got += [(tp, message.offset) async for tp, message in consumer.getmany(timeout=0.01)]
        return got, thread.asked

    got, asked = asyncio.run(scenario())
    assert asked == [{payments}, {usage, payments}]
    assert got == [(payments, 7), (usage, 0), (payments, 7)]
    assert handed == [{("payment-failures", 0): [7]}, {("customer-usage", 0): [0], ("payment-failures", 0): [7]}]


def test_control_fetching_fetches_nothing_while_the_flow_is_stopped_or_every_partition_is_held(tmp_path: Path) -> None:
    """Faust's stream drops what it takes while the app's flow is stopped; an empty set would fetch everything."""
    app = _app(tmp_path)
    usage = TP("customer-usage", 0)
    held = {("customer-usage", 0)}
    faust_private.control_fetching(app, lambda: held, lambda fetched: None)

    async def scenario() -> None:
        consumer = await _assigned(app, {usage})
        consumer._thread = thread = Thread({usage: [_record(usage, 0)]})
        consumer._set_active_tps({usage})
        assert not app.flow_control.is_active()  # as Faust starts, until its recovery resumes the flow
        held.clear()
        assert [m async for m in consumer.getmany(timeout=0.01)] == []
        app.flow_control.resume()
        held.add(("customer-usage", 0))
        assert [m async for m in consumer.getmany(timeout=0.01)] == []
        assert thread.asked == []
        held.clear()
        assert len([m async for m in consumer.getmany(timeout=0.01)]) == 1

    asyncio.run(scenario())


def test_control_fetching_gives_back_what_a_fetch_brings_after_the_flow_stopped(tmp_path: Path) -> None:
    """A fetch begun before a rebalance and answered after it: Faust drops what it hands over, and its seek to
    the committed offsets does not bring back a changelog partition (none committed), so a recovery that had
    sought it to its start waited for ever. The client was asked for a copy of Faust's set (which the
    rebalance empties, and an empty set asks for every partition), and goes back to the dropped records."""
    app = _app(tmp_path)
    usage, changelog, moved = TP("customer-usage", 0), TP("pins-customer-state-changelog", 0), TP("customer-usage", 1)
    handed: list[dict[tuple[str, int], list[int]]] = []
    faust_private.control_fetching(app, lambda: set(), handed.append)

    class Rebalanced(Thread):
        async def getmany(self, active_partitions: set[TP] | None, timeout: float) -> dict[TP, list[Any]]:
            consumer.stop_flow()  # the rebalance, while the client waits for records
            consumer.pause_partitions(consumer.assignment())
            self.asked.append(None if active_partitions is None else set(active_partitions))
            state(changelog).seek(3)  # the client took offsets 0-2 of the changelog, sought to 0 by the recovery
            state(moved).seek(4)  # handed 10-12 over, then sought back to 4 (the committed offset)
            return {changelog: [_record(changelog, n) for n in range(3)],
                    moved: [_record(moved, n) for n in range(10, 13)]}

    def state(tp: TP) -> Any:
        return client._subscription.subscription.assignment.state_value(TopicPartition(*tp))

    async def scenario() -> list[Any]:
        nonlocal consumer, client
        client = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1")
        client._subscription.assign_from_user({TopicPartition(*tp) for tp in (usage, changelog, moved)})
        client._fetcher = SimpleNamespace(seek_to=client._subscription.seek)  # not started: no fetch buffer
        consumer = await _assigned(app, {usage, changelog, moved})
        consumer._thread = thread = Rebalanced(client=client)
        consumer._thread.assignment = lambda: {usage, changelog, moved}
        consumer._set_active_tps({usage, moved})
        consumer.resume_flow()
        app.flow_control.resume()
        got = [m async for m in consumer.getmany(timeout=0.01)]
        assert thread.asked == [{usage, moved}]  # the copy, though Faust's own set was emptied meanwhile
        return got

    consumer: Any = None
    client: Any = None
    assert asyncio.run(scenario()) == []
    assert handed == []  # nothing reached the merge
    assert state(changelog).position == 0  # read again from the first record Faust dropped
    assert state(moved).position == 4  # a seek since the fetch is kept


def test_let_go_and_read_again_move_what_faust_waits_for_and_where_it_reads(tmp_path: Path) -> None:
    app = _app(tmp_path)
    tickets = TP("support-tickets", 1)
    message = faust.types.Message("support-tickets", 1, 9, 0.0, 0, None, b"k", b"v", None)

    async def scenario() -> Thread:
        consumer = await _assigned(app, {tickets})
        consumer._thread = thread = Thread()
        consumer._unacked_messages.add(message)
        faust_private.let_go(app, message)
        assert not consumer._unacked_messages and not message.acked
        await faust_private.read_again(app, ("support-tickets", 1), 7)  # sought in the client's own thread
        return thread

    assert asyncio.run(scenario()).sought == [(tickets, 7)]


def test_before_waiting_for_acks_lets_the_dropped_messages_go_so_the_wait_ends(tmp_path: Path) -> None:
    app = _app(tmp_path)
    usage = TP("customer-usage", 0)
    message = faust.types.Message("customer-usage", 0, 5, 0.0, 0, None, b"k", b"v", None)
    faust_private.before_waiting_for_acks(app, lambda: [message])

    async def scenario() -> None:
        consumer = await _assigned(app, {usage})
        consumer._unacked_messages.add(message)  # handed out, never acknowledged
        await asyncio.wait_for(consumer.wait_empty(), 5.0)
        assert not consumer._unacked_messages and not message.acked

    asyncio.run(scenario())


def test_the_client_view_reads_the_aiokafka_partition_state(tmp_path: Path) -> None:
    app = _app(tmp_path)

    async def scenario() -> None:
        client = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1")
        tp = TopicPartition("customer-usage", 2)
        client._subscription.assign_from_user({tp})
        state = client._subscription.subscription.assignment.state_value(tp)
        app.consumer._thread = SimpleNamespace(_ensure_consumer=lambda: client)
        view = faust_private.ClientView(app)
        source = ("customer-usage", 2)
        assert (view.highwater(source), view.polled_at(source), view.position(source)) == (None, None, None)
        state.highwater, state.timestamp = 30, 1_700_000
        state.seek(25)
        assert (view.highwater(source), view.polled_at(source), view.position(source)) == (30, 1_700_000, 25)
        assert view.highwater(("customer-usage", 3)) is None  # not assigned: not known
        app.consumer._committed_offset[TP(*source)] = 20
        assert view.committed(source) == 20
        assert "client: position 25" in faust_private.fetch_state(app.consumer, TP(*source))
        await client.stop()

    asyncio.run(scenario())


def test_fetch_wait_sets_the_wait_the_clients_fetcher_builds_its_requests_with(tmp_path: Path) -> None:
    from aiokafka.consumer.fetcher import Fetcher
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    # Faust passes a fixed wait and has no setting for it; aiokafka's fetcher puts its own attribute in each request.
    assert "fetch_max_wait_ms=1500" in inspect.getsource(AIOKafkaConsumerThread._create_worker_consumer)
    assert "self._fetch_max_wait_ms" in inspect.getsource(Fetcher._get_actions_per_node)
    app = _app(tmp_path)
    faust_private.fetch_wait(app, 100)

    async def scenario() -> None:
        client = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1")
        client._fetcher = SimpleNamespace(_fetch_max_wait_ms=1500)
        app.consumer._thread = SimpleNamespace(_ensure_consumer=lambda: client)
        await _assigned(app, set())
        assert (client._fetch_max_wait_ms, client._fetcher._fetch_max_wait_ms) == (100, 100)
        client._fetcher = None
        await client.stop()

    asyncio.run(scenario())


class _ChangelogEvent:
    """A recovered changelog record as Faust's recovery hands it to the table."""

    def __init__(self, key: str, value: bytes | None, partition: int = 0) -> None:
        self.key, self.value = key, value
        self.message = SimpleNamespace(value=value, partition=partition)


def test_keep_newest_applies_only_records_not_older_than_what_the_table_holds(tmp_path: Path) -> None:
    app = _app(tmp_path)
    table = app.Table("pins-states", default=None, key_type=str, value_type=bytes)
    kept: list[str] = []
    faust_private.keep_newest(table, lambda value, current: value[0] >= current[0],
                              lambda events: kept.extend(e.value.decode() for e in events))
    table.apply_changelog_batch([_ChangelogEvent("a", b"5 new"), _ChangelogEvent("a", b"3 stale"),
                                 _ChangelogEvent("b", b"1 first")])
    table.apply_changelog_batch([_ChangelogEvent("b", b"0 stale"), _ChangelogEvent("b", b"2 newer")])
    assert table.data["a"] == b"5 new" and table.data["b"] == b"2 newer"
    assert kept == ["5 new", "1 first", "2 newer"]


def test_changelog_sent_is_the_tables_own_callback_for_a_confirmed_changelog_message(tmp_path: Path) -> None:
    app = _app(tmp_path)
    table = app.Table("pins-sent", default=None, key_type=str, value_type=bytes)
    callback = faust_private.changelog_sent(table)
    assert callback == table._on_changelog_sent
    assert list(inspect.signature(callback).parameters) == ["fut"]


def test_answer_from_forwards_through_the_routers_request_forwarding(tmp_path: Path) -> None:
    app = _app(tmp_path)
    route = app.router._route_req
    assert inspect.iscoroutinefunction(route)
    assert list(inspect.signature(route).parameters) == ["dest_url", "web", "request"]


def test_store_puts_a_value_into_the_memory_store_and_tells_it_the_partition(tmp_path: Path) -> None:
    app = _app(tmp_path)
    table = app.Table("pins-memory", default=None, key_type=str, value_type=bytes)
    assert not faust_private.on_disk(table)
    assert faust_private.store(table, "acme", b"state", 3) is False
    assert table.data["acme"] == b"state" and table.data._key_partition["acme"] == 3


@pytest.mark.parametrize("store", ["rocksdb://"])
def test_store_and_stored_values_reach_the_on_disk_stores_partition_databases(tmp_path: Path, store: str) -> None:
    app = _app(tmp_path, store)
    table = app.Table("pins-disk", default=None, key_type=str, value_type=bytes, partitions=4)
    assert faust_private.on_disk(table)
    assert faust_private.store(table, "acme", b"state", 2) is True
    assert faust_private.store(table, "acme", b"newer", 2) is False  # known on disk now
    changelog = table.changelog_topic_name
    app.assignor.assigned_actives = lambda: {TP(changelog, 2)}

    async def values() -> list[tuple[int, bytes]]:
        return [found async for found in faust_private.stored_values(table)]

    assert asyncio.run(values()) == [(2, b"newer")]


def test_stored_value_finds_a_key_in_its_own_partition_whatever_event_the_stream_is_on(tmp_path: Path) -> None:
    """Faust's on-disk store looks a key up in the current stream event's partition; the worker's merge
    processes messages of other partitions than the agent's current one."""
    from weakref import ref

    from faust.streams import _current_event

    app = _app(tmp_path, "rocksdb://")
    table = app.Table("pins-lookup", default=None, key_type=str, value_type=bytes, partitions=4)
    faust_private.store(table, "acme", b"state", 2)
    class Event:  # the agent's current event: a message of partition 0
        message = SimpleNamespace(partition=0)

    other = Event()
    _current_event.set(ref(other))
    try:
        assert table.data.get("acme") is None  # what Faust's own lookup finds meanwhile
        assert faust_private.stored_value(table, "acme", 2) == b"state"
    finally:
        _current_event.set(None)
    assert faust_private.stored_value(table, "acme", None) == b"state"
    assert faust_private.stored_value(table, "nobody", 2) is None


def test_commit_acknowledged_commits_what_the_worker_acknowledged_never_what_faust_skipped(tmp_path: Path) -> None:
    """Faust acks a message its stream skips (and counts gaps as done): its own commit would pass offset 35."""
    assert "skipped_value" in inspect.getsource(faust.Stream._py_aiter)  # the skip Faust acknowledges
    app = _app(tmp_path)
    subscriptions, other = TP("subscriptions", 4), TP("elsewhere", 0)
    acknowledged = faust_private.commit_acknowledged(app, frozenset({"subscriptions"}))

    def message(tp: TP, offset: int) -> faust.types.Message:
        return faust.types.Message(tp.topic, tp.partition, offset, 0.0, 0, None, b"k", b"v", None)

    async def scenario() -> None:
        consumer = await _assigned(app, {subscriptions, other})
        app.topics._acking_topics.update({"subscriptions", "elsewhere"})  # as the agents' topics are
        consumer._committed_offset[subscriptions] = consumer._committed_offset[other] = 35
        consumer.ack(message(subscriptions, 35))  # as Faust's stream does for a message it skipped
        await consumer._add_gap(subscriptions, 35, 36)
        consumer.ack(message(subscriptions, 37))
        assert consumer._acked[subscriptions]  # Faust's record has them: its own rule would commit 38
        assert consumer._new_offset(subscriptions) is None  # the worker acknowledged nothing
        assert not consumer._acked[subscriptions] and not consumer._gap[subscriptions]
        for offset in (35, 36):
            acknowledged(SimpleNamespace(message=message(subscriptions, offset)))
        assert consumer._new_offset(subscriptions) == 37
        consumer._committed_offset[subscriptions] = 37
        assert consumer._new_offset(subscriptions) is None  # nothing new since
        consumer.ack(message(other, 35))
        assert consumer._new_offset(other) == 36  # other topics: Faust's own rule
        await app.on_partitions_revoked.send({subscriptions})
        consumer._committed_offset[subscriptions] = None
        assert consumer._new_offset(subscriptions) is None  # forgotten with the partition

    asyncio.run(scenario())
