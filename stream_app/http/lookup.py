"""``GET /customers/{id}``: what the worker knows of one customer, from whichever worker holds it.

A customer's state lives on the worker that owns its partition: the one a
Java-compatible producer picks for the key (murmur2), where the customer's
events, and so its state, are. Any worker answers; one that does not hold
the customer forwards the request to the one that does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from aiokafka.partitioner import murmur2

from churnwatch.model import ChurnModel
from churnwatch.rules import CustomerState
from churnwatch.rules.clock_math import iso
from churnwatch.rules.features import LONG_DAYS, inputs, observe
from churnwatch.rules.state import Observation

# host -> topic -> partitions, as Faust's router tells it for a table.
Holders = Mapping[str, Mapping[str, Any]]


def partition_of(customer_id: str, partitions: int) -> int:
    return (murmur2(customer_id.encode()) & 0x7FFFFFFF) % partitions


class CustomerLookup:
    """Answers for the customers this worker holds, and knows who holds the others."""

    def __init__(self, state: Callable[[str], CustomerState | None], model: ChurnModel, partitions: int,
                 changelog: Callable[[], str], holders: Callable[[], Holders],
                 now: Callable[[], int | None] = lambda: None) -> None:
        """``changelog``: the state table's changelog topic name; ``holders``: who holds its partitions now;
        ``now``: the worker's clock in seconds (wall time, or the event clock's last sweep; None: not known yet)."""
        self.state = state
        self.model = model
        self.partitions = partitions
        self.changelog = changelog
        self.holders = holders
        self.now = now

    def owner(self, customer_id: str) -> str | None:
        """The URL of the worker that holds this customer's partition, if known."""
        partition = partition_of(customer_id, self.partitions)
        changelog = self.changelog()
        for host, topics in self.holders().items():
            if partition in topics.get(changelog, ()):
                return str(host)
        return None

    def summary(self, customer_id: str) -> dict[str, object] | None:
        """The customer as of the worker's clock (``as_of``), not as of their last event.

        Why: a customer silent for seven weeks is the one a support rep most
        needs to see as such; as of their last event they read as active
        then. Before the clock is known (no sweep yet), as of the last event.
        """
        state = self.state(customer_id)
        if state is None:
            return None
        clock = self.now()
        as_of = state.last_event_at if clock is None else max(clock, state.last_event_at)
        if state.forgotten:  # erased on request: nothing is known of them any more
            return {"customer_id": customer_id, "as_of": iso(as_of), "erased_at": iso(state.erased_at)}
        risk = state.risk
        observation = observe(state, as_of)
        values = {name: round(value, 4) for name, value in inputs(observation, self.model.feature_set).items()}
        ready = self.model.ready
        return {
            "customer_id": customer_id,
            "as_of": iso(as_of),
            "first_seen_at": iso(state.first_seen_at),
            "last_event_at": iso(state.last_event_at),
            "last_login_at": iso(state.last_login_at),
            "plan": state.subscription.plan if state.subscription else None,
            "mrr": state.mrr,
            "cancelled_at": iso(state.cancelled_at),
            "features": plain_features(observation),
            "model_inputs": values,
            "risk": {
                # Scored now, as of ``as_of``; none before the model has passed its gate (a guess would read
                # like a verdict).
                "probability": round(self.model.score(observation).probability, 4) if ready else None,
                "model_ready": ready,
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


def plain_features(observation: Observation) -> dict[str, object]:
    """What the model sees, in the units a person reads: days, counts, shares (its inputs are log-scaled)."""
    plain: dict[str, object] = observation.model_dump(exclude={"counts"})
    plain["active_share_28d"] = round(observation.active_days_28 / LONG_DAYS, 4)
    plain["usage"] = {name: {"last_7_days": recent, "last_28_days": month, "28_days_before": before}
                      for name, (recent, month, before) in observation.counts.items()}
    return plain
