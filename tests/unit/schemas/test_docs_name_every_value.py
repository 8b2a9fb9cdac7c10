"""The docs a subscriber reads name every rule and every rejection reason the code has.

A rule added in the code and not in the docs is an alert a subscriber was not
told about (the docs once listed 5 rules of 7).
"""

from __future__ import annotations

import re
from pathlib import Path

from churnwatch.schemas.alert import RuleName
from churnwatch.schemas.dead_letter import RejectReason

DOCS = Path(__file__).parents[3] / "docs"


def _row(page: str, starts: str) -> str:
    """The table row of ``page`` whose first cell starts with ``starts``."""
    rows = [line for line in (DOCS / page).read_text().splitlines() if line.startswith(f"| {starts}")]
    assert len(rows) == 1, (page, starts, rows)
    return rows[0]


def test_the_alert_contract_names_every_rule() -> None:
    named = set(re.findall(r"`([a-z_]+)`", _row("publishing.md", "`rule`")))
    assert {rule.value for rule in RuleName} <= named, {rule.value for rule in RuleName} - named


def test_the_rejection_metric_names_every_reason() -> None:
    row = _row("operations.md", "`churnwatch_events_rejected_total`")
    named = set(re.findall(r"[a-z_]+", row.split("|")[4]))
    assert {reason.value for reason in RejectReason} <= named, {reason.value for reason in RejectReason} - named


def test_the_rules_page_has_a_row_for_every_rule_the_model_page_for_its_own() -> None:
    for rule in RuleName:
        page = "model.md" if rule is RuleName.MODEL_RISK else "rules.md"
        assert f"`{rule.value}`" in (DOCS / page).read_text(), (rule, page)
        if page == "rules.md":
            _row(page, f"`{rule.value}` |")
