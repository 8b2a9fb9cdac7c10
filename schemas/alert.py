"""The alert contract that support and customer-success tools subscribe to.

One alert message describes one problem episode of one customer. The same
``alert_id`` is reused by every message of that episode (firing, escalated,
resolved), so a subscriber can upsert by id and drop exact repeats, which
at-least-once delivery may produce.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

ALERT_SCHEMA_VERSION: Literal[1] = 1


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class Severity(StrEnum):
    """Declared from the lowest to the highest: ``rank`` and ``raised`` follow this order."""

    INFO = "info"
    WARNING = "warning"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_ORDER.index(self)

    def raised(self, steps: int = 1) -> Severity:
        """``steps`` higher, at most critical."""
        return _SEVERITY_ORDER[min(self.rank + steps, len(_SEVERITY_ORDER) - 1)]


_SEVERITY_ORDER: tuple[Severity, ...] = tuple(Severity)


class RuleName(StrEnum):
    DISENGAGEMENT = "disengagement"
    PAYMENT_FAILURE = "payment_failure"
    SUPPORT_DISTRESS = "support_distress"
    REVENUE_CHURN = "revenue_churn"
    MODEL_RISK = "model_risk"
    ONBOARDING_STALLED = "onboarding_stalled"
    RENEWAL_AT_RISK = "renewal_at_risk"


EvidenceValue = str | int | float | bool | None


class Alert(BaseModel):
    """A churn alert; ``triggered_at`` is event time, never the worker's wall clock."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["alert"] = "alert"
    schema_version: Literal[1] = ALERT_SCHEMA_VERSION
    alert_id: Annotated[str, Field(min_length=1)] = Field(
        description="Deterministic: the same input gives the same id, also after a restart."
    )
    customer_id: Annotated[str, Field(min_length=1)]
    rule: RuleName
    status: AlertStatus
    severity: Severity
    priority: Annotated[int, Field(ge=0, le=100)] = Field(
        description="0..100, higher first: severity weighted by the MRR at stake."
    )
    risk_score: Annotated[float, Field(ge=0, le=1)]
    reasons: list[str] = Field(description="Plain-language reasons, one per condition met.")
    evidence: dict[str, EvidenceValue] = Field(description="The numbers behind the reasons.")
    recommended_action: str
    triggered_at: AwareDatetime = Field(description="Event time of the message's cause.")
    episode_started_at: AwareDatetime = Field(description="Event time the episode opened.")
    sequence: Annotated[int, Field(ge=0)] = Field(
        default=0, description="0 when the episode opens, +1 per escalation or resolution."
    )
