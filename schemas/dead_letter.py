"""The dead-letter record: what was rejected, from where, and why.

Nothing a publisher sends is dropped silently. The raw bytes are kept (base64)
so an operator can fix and re-publish the exact message.
"""

from __future__ import annotations

import base64
from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict


class RejectReason(StrEnum):
    NOT_JSON = "not_json"
    UNKNOWN_TYPE = "unknown_type"
    INVALID_SCHEMA = "invalid_schema"
    KEY_MISMATCH = "key_mismatch"
    TOO_LARGE = "too_large"
    FUTURE_EVENT = "future_event"
    # A valid-looking message the worker failed on: a bug of ours, kept for replay.
    PROCESSING_ERROR = "processing_error"


DEAD_LETTER_SCHEMA_VERSION: Literal[1] = 1


class DeadLetter(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["dead_letter"] = "dead_letter"
    schema_version: Literal[1] = DEAD_LETTER_SCHEMA_VERSION
    source_topic: str
    partition: int
    offset: int
    key_b64: str | None
    value_b64: str | None
    # Set when value_b64 holds only the first bytes of a too-large message
    # (the whole one stays in the source topic at partition/offset).
    value_size: int | None = None
    reason: RejectReason
    error: str
    rejected_at: AwareDatetime

    @staticmethod
    def encode(raw: bytes | None) -> str | None:
        return None if raw is None else base64.b64encode(raw).decode("ascii")

    def raw_value(self) -> bytes | None:
        return None if self.value_b64 is None else base64.b64decode(self.value_b64)
