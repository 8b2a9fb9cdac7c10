"""The changelog writer: states written in batches, messages acknowledged only once the broker has them.

A stand-in for the Faust table and stream: this is the writer's own logic
(batching, ordering, retry), not Kafka's; the crash tests run it on a broker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from churnwatch.rules import CustomerState
from churnwatch.rules.fold import new_state
from churnwatch.worker.changelog import ChangelogWriter
from churnwatch.worker.state_cache import DecodedStates
from churnwatch.testing.events import day, login


class Topic:
    """Confirms each message at once, or (``hold_confirms``) only when told to, calling its callback as Faust does."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, int]] = []
        self.fail = False
        self.hold_confirms = False
        self.unconfirmed: list[tuple[asyncio.Future[None], Callable[[Any], None]]] = []

    async def send(self, key: str, value: bytes, partition: int, callback: Callable[[Any], None],
                   **_: Any) -> asyncio.Future[None]:
        if self.fail:
            raise ConnectionError("broker gone")
        self.sent.append((key, value, partition))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.unconfirmed.append((done, callback))
        if not self.hold_confirms:
            self.confirm()
        return done

    def get_topic_name(self) -> str:
        return "a-topic"

    def confirm(self) -> None:
        for done, callback in self.unconfirmed:
            done.set_result(None)
            callback(done)
        self.unconfirmed = []


class Table:
    key_serializer = value_serializer = "raw"

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.changelog_topic = Topic()

    def get(self, key: str) -> bytes | None:
        return self.data.get(key)


class Stream:
    def __init__(self) -> None:
        self.acked: list[int] = []

    async def ack(self, event: Any) -> bool:
        self.acked.append(event)
        return True


def _state(customer: str, n: int):
    event = login(day(n), customer)
    return new_state(event).model_copy(update={"last_event_at": n})


def _stored(table: Table, customer: str) -> CustomerState:
    return CustomerState.from_bytes(table.data[customer])


def _writer(batch_max: int = 3) -> tuple[ChangelogWriter, Table, Stream]:
    table = Table()
    return ChangelogWriter(table, batch_max, 60.0, DecodedStates(10)), table, Stream()


def test_pending_states_are_read_first_and_written_once_per_customer_then_acknowledged() -> None:
    async def scenario() -> None:
        writer, table, stream = _writer()
        writer.put("acme", _state("acme", 1), 2)
        assert not writer.hold(stream, 10)
        writer.put("acme", _state("acme", 2), 2)  # the same customer again before the write
        assert not writer.hold(stream, 11)
        assert writer.get("acme") == _state("acme", 2) and table.data == {}
        writer.put("globex", _state("globex", 1), 0)
        assert writer.hold(stream, 12)  # batch_max reached: time to write
        await writer.write()
        assert [(k, p) for k, _, p in table.changelog_topic.sent] == [("acme", 2), ("globex", 0)]
        assert stream.acked == [10, 11, 12]
        assert writer.get("acme") == _state("acme", 2)  # now from the table
        assert _stored(table, "acme") == _state("acme", 2)
        await writer.stop()

    asyncio.run(scenario())


def test_a_failed_write_acknowledges_nothing_and_is_retried_with_the_newest_states() -> None:
    async def scenario() -> None:
        writer, table, stream = _writer()
        writer.put("acme", _state("acme", 1), 1)
        writer.hold(stream, 10)
        table.changelog_topic.fail = True
        await writer.write()
        assert stream.acked == [] and table.changelog_topic.sent == []
        writer.put("acme", _state("acme", 5), 1)  # newer than the one that failed
        writer.hold(stream, 11)
        table.changelog_topic.fail = False
        await writer.stop()
        assert [(k, CustomerState.from_bytes(v)) for k, v, _ in table.changelog_topic.sent] == [
            ("acme", _state("acme", 5))]
        assert stream.acked == [10, 11]

    asyncio.run(scenario())


def test_a_state_enters_the_table_only_once_the_broker_confirmed_it() -> None:
    """Until then it is read from the write under way (on disk, an unconfirmed state would outlive a crash)."""
    async def scenario() -> None:
        writer, table, stream = _writer()
        writer.put("acme", _state("acme", 1), 2)
        writer.hold(stream, 10)
        await writer.write()
        assert _stored(table, "acme") == _state("acme", 1)
        table.changelog_topic.hold_confirms = True
        writer.put("acme", _state("acme", 2), 2)
        writer.hold(stream, 11)
        writing = asyncio.create_task(writer.write())
        while not table.changelog_topic.unconfirmed:
            await asyncio.sleep(0)
        assert _stored(table, "acme") == _state("acme", 1)  # not confirmed yet
        assert writer.get("acme") == _state("acme", 2) and writer.pending("acme")
        assert stream.acked == [10]
        table.changelog_topic.confirm()
        await writing
        assert _stored(table, "acme") == _state("acme", 2) and not writer.pending("acme")
        assert stream.acked == [10, 11]
        await writer.stop()

    asyncio.run(scenario())


def test_states_confirmed_during_a_rebalance_are_put_back_over_older_recovered_ones() -> None:
    """Recovery reads the changelog into the table while the writer still confirms: the newer state must win."""
    async def scenario() -> None:
        writer, table, stream = _writer()
        writer.put("acme", _state("acme", 1), 2)
        writer.hold(stream, 10)
        await writer.write()
        old = table.data["acme"]
        writer.rebalancing()
        writer.put("acme", _state("acme", 2), 2)
        writer.put("globex", _state("globex", 2), 3)  # a partition the rebalance takes away
        writer.hold(stream, 11)
        await writer.write()
        table.data["acme"] = old  # recovery applies the changelog's older message last
        put_back = writer.recovered(active={0, 1, 2})
        assert [(customer, partition) for customer, _, partition in put_back] == [("acme", 2)]
        assert _stored(table, "acme") == _state("acme", 2)
        assert writer.get("acme") == _state("acme", 2)
        # Outside a rebalance nothing is kept to be put back.
        writer.put("acme", _state("acme", 3), 2)
        writer.hold(stream, 12)
        await writer.write()
        assert writer.recovered(active={2}) == []
        await writer.stop()

    asyncio.run(scenario())


def test_what_the_messages_sent_is_confirmed_before_their_states_are_written() -> None:
    """The outbox order: an alert the broker has not confirmed holds the state that records its cause back."""
    async def scenario() -> None:
        writer, table, stream = _writer()
        alerts = Topic()
        alerts.hold_confirms = True
        await writer.outbox.send(alerts, key="acme", value=b"alert", partition=0, callback=lambda _: None)
        writer.put("acme", _state("acme", 1), 2)
        writer.hold(stream, 10)
        writing = asyncio.create_task(writer.write())
        for _ in range(20):
            await asyncio.sleep(0)
        assert table.changelog_topic.sent == [] and stream.acked == []  # waits for the alert's confirmation
        alerts.confirm()
        await writing
        assert _stored(table, "acme") == _state("acme", 1) and stream.acked == [10]
        await writer.stop()

    asyncio.run(scenario())


def test_a_message_after_a_write_is_sent_only_once_the_states_before_it_are_confirmed() -> None:
    """A partition's clock: sent before its states were in the changelog, a crash had their work redone later.
    The write it waits for comes at once, in the writer's own task: the agent goes on meanwhile."""
    async def until(condition: Callable[[], object]) -> None:
        async with asyncio.timeout(5):
            while not condition():
                await asyncio.sleep(0)

    async def scenario() -> None:
        writer, table, stream = _writer(batch_max=100)  # a 60 s window: only the clock makes this write
        labels = Topic()
        writer.put("acme", _state("acme", 1), 2)
        assert not writer.hold(stream, 10)
        table.changelog_topic.fail = True
        writer.after_write(labels, key=b"", value=b"clock", partition=0, callback=lambda _: None)
        assert not writer.hold(stream, 11)  # the agent is not made to wait for the write
        await until(lambda: not writer._soon.is_set() and not writer._writing.locked())  # tried, and failed
        assert labels.sent == [] and stream.acked == []  # the states are not in: neither is the clock
        table.changelog_topic.fail = False
        table.changelog_topic.hold_confirms = True
        writing = asyncio.create_task(writer.write())  # the retry
        await until(lambda: table.changelog_topic.unconfirmed)
        assert labels.sent == []  # sent, not confirmed yet
        writer.after_write(labels, key=b"", value=b"the next clock", partition=0,
                           callback=lambda _: None)  # after this write began
        table.changelog_topic.confirm()
        await writing
        assert [v for _, v, _ in labels.sent][:1] == [b"clock"] and stream.acked == [10, 11]
        table.changelog_topic.hold_confirms = False
        await until(lambda: len(labels.sent) == 2)  # the next clock's write came by itself
        assert [v for _, v, _ in labels.sent] == [b"clock", b"the next clock"]
        await writer.stop()

    asyncio.run(scenario())


def test_a_send_the_producer_gave_up_on_is_sent_again_before_the_state_is_written() -> None:
    async def scenario() -> None:
        writer, table, stream = _writer()
        alerts = Topic()
        alerts.hold_confirms = True
        await writer.outbox.send(alerts, key="acme", value=b"alert", partition=0, callback=lambda _: None)
        failed, _ = alerts.unconfirmed.pop()
        failed.set_exception(ConnectionError("request timed out"))
        alerts.hold_confirms = False
        writer.put("acme", _state("acme", 1), 2)
        writer.hold(stream, 10)
        await writer.write()
        assert [v for _, v, _ in alerts.sent] == [b"alert", b"alert"]  # sent again, then confirmed
        assert _stored(table, "acme") == _state("acme", 1) and stream.acked == [10]
        await writer.stop()

    asyncio.run(scenario())


def test_each_write_round_frames_its_values_with_a_higher_version_and_the_generation() -> None:
    from churnwatch.worker.versions import WriteVersions, version_of

    async def scenario() -> None:
        generation = [4]
        table, stream = Table(), Stream()
        writer = ChangelogWriter(table, 3, 60.0, DecodedStates(10), versions=WriteVersions(lambda: generation[0]))
        writer.put("acme", _state("acme", 1), 2)
        writer.hold(stream, 10)
        await writer.write()
        first = version_of(table.data["acme"])
        writer.put("acme", _state("acme", 2), 2)
        writer.hold(stream, 11)
        await writer.write()
        second = version_of(table.data["acme"])
        assert first[0] == second[0] == 4 and second > first
        generation[0] = 5
        writer.put("globex", _state("globex", 1), 1)
        writer.hold(stream, 12)
        await writer.write()
        assert version_of(table.data["globex"]) > second
        await writer.stop()

    asyncio.run(scenario())
