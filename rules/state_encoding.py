"""A customer's state as stored: the table value, which is also a changelog message.

Every changed state is written once per batch and read back at every
restart, so its bytes cost CPU on the hot path and memory in the store.
The encoding this version writes (2):

* ``b"\\x02"``, then the outline's length (two bytes, big-endian), then the
  outline: MessagePack of what a restart needs to index the customer
  (``Outline``), readable without building the state;
* then the state, MessagePack compressed with zlib. Each model is the list
  of its field values in declaration order, not an object with keys; the
  remembered event ids lose the customer id they start with, and their times
  are written as differences.

Positional, so a field is only ever added at the end of its model, with a
default: a value written before it has fewer values, and the missing ones
take their defaults. Older values still read: compressed JSON (a zlib
stream, version 1) and plain JSON (``{``, what early versions wrote), framed
or not. Decoding builds the models without validating them again: the
values are ours, and their shapes are checked as they are unpacked (a value
of the wrong shape is an error, never a half-built state).
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, TypeVar

import msgspec
from pydantic import BaseModel

from churnwatch.rules.recent_ids import RecentIds
from churnwatch.rules.state import (
    PENDING,
    CustomerState,
    Downgrade,
    Driver,
    Episode,
    Failure,
    MrrChange,
    Observation,
    Risk,
    Sentiment,
    Snapshot,
    Subscription,
    TicketOpened,
    Warning,
    pending_since,
)
from churnwatch.schemas.alert import RuleName, Severity

VERSION = b"\x02"
# A table value may start with a frame the worker adds (``FRAME``, then ``FRAME_BYTES`` - 1 bytes that order the
# values of one customer written by different workers; ``churnwatch.worker.versions``); the state follows it.
FRAME = b"\x01"
FRAME_BYTES = 17
# zlib: the fastest level, an 8 KB window. On the bench's mix, level 6 made values 6% smaller for twice the CPU,
# and the default window's setup (256 KB) cost more than compressing a state of a few KB.
LEVEL, WINDOW_BITS, MEMORY_LEVEL = 1, 13, 5

Model = TypeVar("Model", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Outline:
    """What the sweep's due index and the at-risk gauge need of a stored state."""

    customer_id: str
    next_due_at: int | None
    open_severities: tuple[Severity, ...]
    pending_since: int | None = None  # the oldest snapshot waiting for its model version (rules.labels)
    last_event_at: int | None = None  # the newest event applied: a worker taking the partition over starts there


class StoredStateError(ValueError):
    """A table value that is no customer state this version can read."""


# ---- writing ----

def _field_values(model: type[BaseModel]) -> Callable[[BaseModel], tuple[Any, ...]]:
    take = itemgetter(*model.model_fields)
    return lambda value: take(value.__dict__)


_FIELD_VALUES: dict[type, Callable[[BaseModel], tuple[Any, ...]]] = {
    model: _field_values(model) for model in (
        Failure, TicketOpened, Sentiment, Downgrade, Subscription, MrrChange, Observation, Snapshot, Driver, Risk,
        Episode, Warning)
}
_STATE_FIELDS = tuple(CustomerState.model_fields)
_STATE_VALUES = itemgetter(*_STATE_FIELDS)
_IDS_AT = _STATE_FIELDS.index("recent_event_ids")


def _positional(value: object) -> tuple[Any, ...]:
    """MessagePack's hook for what it cannot write itself: the core's models, as their field values."""
    try:
        return _FIELD_VALUES[type(value)](value)  # type: ignore[arg-type]
    except KeyError:
        raise TypeError(f"a {type(value).__name__} has no stored form") from None


_ENCODER = msgspec.msgpack.Encoder(enc_hook=_positional)


def encode(state: CustomerState) -> bytes:
    """The table value of ``state``."""
    values = list(_STATE_VALUES(state.__dict__))
    values[_IDS_AT] = state.recent_event_ids.packed(state.customer_id)
    head = _ENCODER.encode((state.customer_id, state.last_event_at, state.next_due_at,
                            [e.severity for e in state.episodes.values()], pending_since(state)))
    return VERSION + len(head).to_bytes(2, "big") + head + _compressed(_ENCODER.encode(values))


def _compressed(data: bytes) -> bytes:
    packer = zlib.compressobj(LEVEL, zlib.DEFLATED, WINDOW_BITS, MEMORY_LEVEL)
    return packer.compress(data) + packer.flush()


# ---- reading ----

def decode(raw: bytes) -> CustomerState:
    """The state in a table value, in any encoding this version reads."""
    body = _unframed(raw)
    if body[:1] != VERSION:
        return CustomerState.model_validate_json(_json(body))
    try:
        values = msgspec.msgpack.decode(zlib.decompress(body[3 + int.from_bytes(body[1:3], "big"):]))
        return _build_state(values)
    except (msgspec.DecodeError, zlib.error, TypeError, ValueError, IndexError, KeyError) as exc:
        raise StoredStateError(f"a stored state that does not read: {exc}") from exc


def outline(raw: bytes) -> Outline:
    """A table value's outline, read without building the state: a restore reads every customer's."""
    body = _unframed(raw)
    if body[:1] != VERSION:
        return _json_outline(body)
    try:
        customer_id, last_event_at, due, severities, waiting = msgspec.msgpack.decode(
            body[3:3 + int.from_bytes(body[1:3], "big")])
        return Outline(customer_id, due, tuple(map(Severity, severities)), waiting, last_event_at)
    except (msgspec.DecodeError, TypeError, ValueError) as exc:
        raise StoredStateError(f"a stored state whose outline does not read: {exc}") from exc


def _unframed(raw: bytes) -> bytes:
    return raw[FRAME_BYTES:] if raw[:1] == FRAME else raw


def _model(model: type[Model], convert: dict[str, Callable[[Any], Any]] | None = None) -> Callable[[list[Any]], Model]:
    """A builder of ``model`` from its field values, with the fields ``convert`` names turned back into theirs."""
    names = tuple(model.model_fields)
    fields = tuple(model.model_fields.values())
    required = sum(1 for f in fields if f.is_required())
    fixes = [(names.index(name), fix) for name, fix in (convert or {}).items()]
    every = frozenset(names)
    _set = object.__setattr__

    def build(values: list[Any]) -> Model:
        if not required <= len(values) <= len(names):
            raise ValueError(f"{len(values)} values for a {model.__name__} of {len(names)} fields")
        if len(values) < len(names):  # written before the fields at the end were added: each its own default
            values = [*values, *(f.get_default(call_default_factory=True) for f in fields[len(values):])]
        for at, fix in fixes:
            values[at] = fix(values[at])
        new = model.__new__(model)
        _set(new, "__dict__", dict(zip(names, values, strict=True)))
        _set(new, "__pydantic_fields_set__", set(every))
        _set(new, "__pydantic_extra__", None)
        _set(new, "__pydantic_private__", None)
        return new

    return build


def _each(build: Callable[[list[Any]], Model]) -> Callable[[list[list[Any]]], tuple[Model, ...]]:
    return lambda values: tuple(map(build, values))


def _optional(build: Callable[[list[Any]], Model]) -> Callable[[list[Any] | None], Model | None]:
    return lambda values: None if values is None else build(values)


_episode = _model(Episode, {"severity": Severity})
_snapshot = _model(Snapshot, {
    "observation": _optional(_model(Observation, {"counts": lambda c: {k: tuple(v) for k, v in c.items()}})),
    "values": tuple})
_STATE_CONVERT: dict[str, Callable[[Any], Any]] = {
    "failures": _each(_model(Failure)),
    "tickets_opened": _each(_model(TicketOpened)),
    "sentiments": _each(_model(Sentiment)),
    "subscription": _optional(_model(Subscription)),
    "mrr_changes": _each(_model(MrrChange)),
    "downgrades": _each(_model(Downgrade)),
    "snapshots": _each(_snapshot),
    "risk": _optional(_model(Risk, {"drivers": _each(_model(Driver))})),
    "episodes": lambda episodes: {RuleName(name): _episode(e) for name, e in episodes.items()},
    "evaluated_at": lambda times: {RuleName(name): at for name, at in times.items()},
    "warnings": _each(_model(Warning, {"rule": RuleName})),
}


_state = _model(CustomerState, _STATE_CONVERT)


def _build_state(values: list[Any]) -> CustomerState:
    if not isinstance(values, list) or not values or not isinstance(values[0], str):
        raise ValueError("not a list of a state's values")
    if len(values) > _IDS_AT:
        values[_IDS_AT] = RecentIds.unpacked(values[0], *values[_IDS_AT])
    return _state(values)


# ---- the JSON of earlier versions ----

def _json(body: bytes) -> bytes:
    """Compressed JSON (version 1) or plain (a '{': what early versions wrote)."""
    return body if body[:1] == b"{" else zlib.decompress(body)


# ``next_due_at`` was the model's last field when JSON was written, so when set it ends the JSON;
# ``"episodes":{`` can only be the top-level key (no other object is keyed
# by that word with an object for value, and inside a string the quotes are
# escaped).
_DUE_AT_END = re.compile(r',"next_due_at":(-?\d+)\}\Z')
# Snapshots are kept oldest first, so the first waiting one is the oldest.
_PENDING = re.compile(rf'"taken_at":(-?\d+),"feature_set":"{PENDING}"')
_START = '{"customer_id":'
_LAST_EVENT_AT = re.compile(r',"first_seen_at":-?\d+,"last_event_at":(-?\d+)')  # right after the customer id
_EPISODES = '"episodes":{'
_DECODER = json.JSONDecoder()


def _json_outline(body: bytes) -> Outline:
    doc = _json(body).decode()
    try:
        if not doc.startswith(_START):
            raise ValueError("not the expected shape")
        customer_id, end = _DECODER.raw_decode(doc, len(_START))
        last_event = _LAST_EVENT_AT.match(doc, end)
        if last_event is None:
            raise ValueError("not the expected shape")
        due = _DUE_AT_END.search(doc)
        at = doc.find(_EPISODES)
        episodes = _DECODER.raw_decode(doc, at + len(_EPISODES) - 1)[0] if at >= 0 else {}
        pending = _PENDING.search(doc)
        return Outline(str(customer_id), int(due.group(1)) if due else None,
                       tuple(Severity(e["severity"]) for e in episodes.values()),
                       int(pending.group(1)) if pending else None, int(last_event.group(1)))
    except (ValueError, KeyError, TypeError, AttributeError):
        state = CustomerState.model_validate_json(_json(body))  # not the shape expected: the slow way, still right
        return Outline(state.customer_id, state.next_due_at, tuple(e.severity for e in state.episodes.values()),
                       pending_since(state), state.last_event_at)
