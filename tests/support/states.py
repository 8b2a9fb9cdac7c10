"""Customer states as the worker's changelog holds them, and as an uninterrupted run makes them."""

from __future__ import annotations

import asyncio

from churnwatch.kafka.reader import collect
from churnwatch.offline.replay import Replay
from churnwatch.rules import CustomerState, RulesConfig
from churnwatch.schemas.events import Event
from churnwatch.settings import Settings
from churnwatch.worker.app import STATE_TABLE


def latest_states(records) -> dict[str, dict[str, object]]:
    """Each customer's newest state in changelog records (in topic order), as comparable facts."""
    states: dict[str, dict[str, object]] = {}
    for record in records:
        if record.value is not None:
            state = CustomerState.from_bytes(record.value)
            states[state.customer_id] = state.facts()
    return states


def changelog_states(settings: Settings, want: dict[str, dict[str, object]], until, timeout_s: float = 120.0,
                     ) -> dict[str, dict[str, object]]:
    """The table's newest states as its changelog holds them, read until they equal ``want`` or time is up."""
    changelog = f"{settings.app_id}-{STATE_TABLE}-changelog"
    return latest_states(asyncio.run(collect(settings.bootstrap_servers, changelog,
                                             lambda rs: latest_states(rs) == want, timeout_s, until=until)))


def replayed_facts(events: list[Event]) -> dict[str, dict[str, object]]:
    """What an uninterrupted run makes of ``events``: each customer's facts, by the replay."""
    replay = Replay(RulesConfig(), lambda alert: None)
    for event in events:
        replay.feed(event.model_dump_json())
    return {customer: state.facts() for customer, state in replay.states.items()}


