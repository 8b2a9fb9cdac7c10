"""Deterministic alert ids: the same episode always gets the same id.

Built from the customer, the rule and the event that opened the episode, so a
replay, a restart or a redelivery produces the id again and subscribers can
deduplicate on it.
"""

from __future__ import annotations

import uuid

from churnwatch.schemas.alert import RuleName

ALERT_NAMESPACE = uuid.UUID("5b0a4f7e-3c1d-4e8a-9f65-6c0d2a7b1e93")


def alert_id(customer_id: str, rule: RuleName, opening_event_id: str) -> str:
    return str(uuid.uuid5(ALERT_NAMESPACE, f"{customer_id}\x1f{rule.value}\x1f{opening_event_id}"))
