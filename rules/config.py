"""The rules file: every threshold, validated at start-up, with documented defaults.

The defaults live in ``rules/default_rules.toml`` (the documented copy) and in
the models below; a test keeps the two equal.
"""

from __future__ import annotations

import functools
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from churnwatch.schemas.alert import RuleName, Severity

DEFAULT_RULES_FILE = Path(__file__).with_name("default_rules.toml")

Fraction = Annotated[float, Field(ge=0, lt=1)]
Days = Annotated[int, Field(ge=1, le=3650)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StateConfig(_Section):
    keep_days: Annotated[int, Field(ge=60, le=366)] = 60
    max_future_hours: Annotated[float, Field(gt=0, le=24 * 365)] = 24
    remembered_event_ids: Annotated[int, Field(ge=1, le=10_000)] = 128
    max_names_per_day: Annotated[int, Field(ge=1, le=1_000)] = 48


class DisengagementConfig(_Section):
    enabled: bool = True
    activity: Literal["purchase", "all"] = "purchase"
    min_drop: Annotated[float, Field(gt=0, le=1)] = 0.30
    min_previous_activity: Annotated[int, Field(ge=1)] = 1
    silent_days: Days = 15
    critical_silent_days: Days = 30
    severity: Severity = Severity.HIGH

    @model_validator(mode="after")
    def _critical_after_silent(self) -> DisengagementConfig:
        if self.critical_silent_days <= self.silent_days:
            raise ValueError("critical_silent_days must be greater than silent_days")
        return self


class PaymentFailureConfig(_Section):
    enabled: bool = True
    window_days: Days = 30
    severity: Severity = Severity.WARNING
    card_expired_severity: Severity = Severity.HIGH
    escalate_at_failures: Annotated[int, Field(ge=2)] = 2
    critical_at_failures: Annotated[int, Field(ge=2)] = 3
    max_episode_days: Days = 60

    @model_validator(mode="after")
    def _ordered(self) -> PaymentFailureConfig:
        if self.critical_at_failures < self.escalate_at_failures:
            raise ValueError("critical_at_failures must be >= escalate_at_failures")
        return self


class SupportDistressConfig(_Section):
    enabled: bool = True
    window_days: Days = 14
    min_tickets: Annotated[int, Field(ge=1)] = 3
    negative_sentiment: Annotated[float, Field(ge=-1, le=1)] = -0.5
    urgent_ticket: bool = True
    cancellation_request: bool = True
    severity: Severity = Severity.WARNING


class RevenueChurnConfig(_Section):
    enabled: bool = True
    min_drop: Fraction = 0.0
    window_days: Days = 30
    severity: Severity = Severity.WARNING
    high_drop: Annotated[float, Field(gt=0, le=1)] = 0.5
    commitment_max_discount: Fraction = 0.25


class OnboardingStalledConfig(_Section):
    enabled: bool = True
    window_days: Days = 21
    check_day: Days = 7
    min_active_share: Fraction = 0.5
    key_events: tuple[Annotated[str, Field(min_length=1, max_length=200)], ...] = ()
    min_key_events: Annotated[int, Field(ge=0)] = 0
    severity: Severity = Severity.WARNING

    @model_validator(mode="after")
    def _check_within_window(self) -> OnboardingStalledConfig:
        if self.check_day >= self.window_days:
            raise ValueError("check_day must be less than window_days")
        return self


class RenewalAtRiskConfig(_Section):
    enabled: bool = True
    lead_days: dict[str, Days] = Field(default_factory=lambda: {"1": 10, "3": 30, "6": 45, "12": 90})
    activity_drop: Fraction = 0.3
    min_active_share: Fraction = 0.3
    open_episodes: tuple[RuleName, ...] = (RuleName.PAYMENT_FAILURE, RuleName.SUPPORT_DISTRESS,
                                           RuleName.DISENGAGEMENT, RuleName.ONBOARDING_STALLED)
    model_risk: bool = False  # the live model's ranking differs from run to run (default_rules.toml)
    severity: Severity = Severity.WARNING

    @functools.cached_property
    def leads(self) -> tuple[tuple[int, int], ...]:
        """(months, lead days) of ``lead_days``, longest period first: read at every judgement of a renewal,
        so parsed once rather than each time."""
        return tuple(sorted(((int(period), days) for period, days in self.lead_days.items()), reverse=True))

    @model_validator(mode="after")
    def _periods_are_months(self) -> RenewalAtRiskConfig:
        for period in self.lead_days:
            if not period.isdigit() or not 1 <= int(period) <= 120:
                raise ValueError(f"lead_days: {period!r} is not a billing period in months (1..120)")
        return self


class ModelFeaturesConfig(_Section):
    # Usage names (``kind`` or ``kind:feature``) that always get features of their own.
    names: tuple[Annotated[str, Field(min_length=1, max_length=200)], ...] = ()
    max_names: Annotated[int, Field(ge=1, le=256)] = 32
    ratio_names: Annotated[int, Field(ge=0, le=16)] = 6
    vocabulary_every_labels: Annotated[int, Field(ge=1)] = 500


class ModelConfig(_Section):
    enabled: bool = True
    selection: Literal["budget", "threshold"] = "budget"
    budget_share: Annotated[float, Field(gt=0, le=1)] = 0.05
    budget_per_day: Annotated[float, Field(ge=0)] = 0.0
    lift_floor: Annotated[float, Field(ge=0)] = 0.0
    lift_min_hits: Annotated[int, Field(ge=1)] = 10
    clear_share: Annotated[float, Field(gt=0, le=1)] = 0.1
    rank_by: Literal["revenue_at_stake", "probability"] = "revenue_at_stake"
    threshold: Annotated[float, Field(gt=0, lt=1)] = 0.5
    clear_below: Annotated[float, Field(gt=0, lt=1)] = 0.3
    high_at: Annotated[float, Field(gt=0, le=1)] = 0.8
    min_labels: Annotated[int, Field(ge=0)] = 300
    auc_floor: Annotated[float, Field(ge=0, le=1)] = 0.6
    gate_confidence: Annotated[float, Field(ge=0.5, lt=1)] = 0.95
    gate_window: Annotated[int, Field(ge=10, le=1_000_000)] = 5000
    gate_min_positives: Annotated[int, Field(ge=1)] = 20
    snapshot_every_days: Days = 7
    horizon_days: Days = 30
    label: Literal["cancellation", "inactivity"] = "cancellation"
    inactive_days: Days = 30
    learning_rate: Annotated[float, Field(gt=0, le=10)] = 0.003
    l2: Annotated[float, Field(ge=0, le=10)] = 0.0001
    features: ModelFeaturesConfig = ModelFeaturesConfig()

    @model_validator(mode="after")
    def _ordered(self) -> ModelConfig:
        if not self.clear_below <= self.threshold <= self.high_at:
            raise ValueError("need clear_below <= threshold <= high_at")
        if self.clear_share < self.budget_share:
            raise ValueError("need budget_share <= clear_share")
        return self


class OutcomesConfig(_Section):
    enabled: bool = True
    horizon_days: Days = 30
    precision_floor: Fraction = 0.2
    min_judged: Annotated[int, Field(ge=1)] = 50


class RulesConfig(_Section):
    state: StateConfig = StateConfig()
    disengagement: DisengagementConfig = DisengagementConfig()
    payment_failure: PaymentFailureConfig = PaymentFailureConfig()
    support_distress: SupportDistressConfig = SupportDistressConfig()
    revenue_churn: RevenueChurnConfig = RevenueChurnConfig()
    onboarding_stalled: OnboardingStalledConfig = OnboardingStalledConfig()
    renewal_at_risk: RenewalAtRiskConfig = RenewalAtRiskConfig()
    model: ModelConfig = ModelConfig()
    outcomes: OutcomesConfig = OutcomesConfig()


class RulesFileError(ValueError):
    pass


def load_rules(path: Path | None = None) -> RulesConfig:
    """Read and validate a rules file; the error names the file and the keys."""
    path = path or DEFAULT_RULES_FILE
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RulesFileError(f"cannot read rules file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise RulesFileError(f"rules file {path} is not valid TOML: {exc}") from exc
    try:
        return RulesConfig.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
            for err in exc.errors(include_url=False)
        )
        raise RulesFileError(f"rules file {path} is invalid: {problems}") from exc
