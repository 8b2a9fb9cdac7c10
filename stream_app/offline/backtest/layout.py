"""Which columns of a warehouse export hold what: ChurnSim's by default, a TOML mapping for others."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class _Columns(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EventColumns(_Columns):
    customer: str = "account_id"
    time: str = "event_time"
    name: str = "event_type"
    value: str = "value"  # optional in the file


class SubscriptionColumns(_Columns):
    customer: str = "account_id"
    product: str = "product"
    start: str = "start_date"
    end: str = "end_date"
    mrr: str = "mrr"
    billing_period_months: str = "bill_period_months"  # optional in the file


class ExportLayout(_Columns):
    """How an export's columns map onto churnwatch; defaults are ChurnSim's (the book's simulator)."""

    events: EventColumns = EventColumns()
    subscriptions: SubscriptionColumns = SubscriptionColumns()
    # Products that are add-ons, not plans: they count in MRR, not in the plan's name.
    add_ons: tuple[str, ...] = ()
    usage_kind: Annotated[str, Field(pattern="^(purchase|feature_use|session|api_call|other)$")] = "feature_use"
    login_per_active_day: bool = True
    # A subscription that restarts more than this many days after it ended was cancelled in between.
    gap_days: Annotated[int, Field(ge=0)] = 7
    delimiter: Annotated[str, Field(min_length=1, max_length=1)] = ","


class LayoutError(ValueError):
    pass


def load_layout(path: Path | None) -> ExportLayout:
    """The column mapping file (TOML), or the defaults; errors name the file and the key."""
    if path is None:
        return ExportLayout()
    try:
        return ExportLayout.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise LayoutError(f"cannot read column mapping {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise LayoutError(f"column mapping {path} is not valid TOML: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                             for e in exc.errors(include_url=False))
        raise LayoutError(f"column mapping {path} is invalid: {problems}") from exc
