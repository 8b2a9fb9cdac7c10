"""Per-customer state: what the worker remembers between a customer's events.

The state is a plain pydantic model so it serialises to compact JSON for the
Faust table's changelog and replays identically offline.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class CustomerState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: str
    first_seen_at: datetime
    last_event_at: datetime
    events_seen: int = 0
    mrr: float = 0.0
    payment_failures: int = 0
    last_failure_reason: str | None = None

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_defaults=True).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> CustomerState:
        return cls.model_validate_json(raw)
