"""What a rule says about a customer at a moment, and the shape of a rule."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import BaseModel

from churnwatch.rules.config import RulesConfig
from churnwatch.rules.state import CustomerState
from churnwatch.schemas.alert import EvidenceValue, RuleName, Severity

@dataclass(frozen=True, slots=True)
class Condition:
    """A rule that holds: how bad, why, with which numbers, and what to do.

    ``opening_key`` names what opened the problem (an event id, or the moment
    a silence began), so the episode's alert id is the same in every run.
    """

    severity: Severity
    opening_key: str
    reasons: tuple[str, ...]
    recommended_action: str
    risk_score: float
    evidence: dict[str, EvidenceValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, eq=False)  # each rule is one object: compared by identity, at every evaluation
class Rule:
    """One churn rule as three pure functions of (state, now in seconds, config).

    ``fed_by`` holds the event models whose arrival re-evaluates it.
    ``condition`` is None when the rule does not hold. ``next_check`` is the
    earliest later time at which the answer could change with no new event
    (the sweep's due time), or None if only an event can change it.
    ``resolution`` explains, in words, why an open episode ended.
    """

    name: RuleName
    fed_by: frozenset[type[BaseModel]]
    enabled: Callable[[RulesConfig], bool]
    condition: Callable[[CustomerState, int, RulesConfig], Condition | None]
    next_check: Callable[[CustomerState, int, RulesConfig], int | None]
    resolution: Callable[[CustomerState, int, RulesConfig], str]
