"""Every shipped rule keeps its promises to the engine (``churnwatch.testing.check_rule``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from churnwatch.rules import disengagement, model_risk, onboarding, payment, renewal, revenue, support
from churnwatch.rules.condition import Rule
from churnwatch.rules.config import load_rules
from churnwatch.schemas.events import Event
from churnwatch.testing import check_rule, day, failed, login, run, subscription, succeeded, ticket, usage

HISTORIES: dict[str, list[list[Event]]] = {
    "disengagement": [
        [login(day(10)), usage(day(10), quantity=100), login(day(25)), login(day(40)), usage(day(31), quantity=50)],
        [login(day(0)), usage(day(1), quantity=10), usage(day(35), quantity=2), login(day(36))],
    ],
    "payment_failure": [
        [failed(day(1), "card_expired"), failed(day(4), invoice="inv-2")],
        [failed(day(1)), succeeded(day(2))],
        [failed(day(1)), failed(day(2), invoice="inv-2"), failed(day(3), invoice="inv-3"), succeeded(day(5))],
    ],
    "support_distress": [
        [ticket(day(1), priority="urgent", ticket_id="t1"), ticket(day(2), ticket_id="t2", sentiment=-0.8),
         ticket(day(3), ticket_id="t3"), ticket(day(9), "closed", ticket_id="t1")],
        [ticket(day(1), ticket_id="a"), ticket(day(1.5), ticket_id="b"), ticket(day(2), ticket_id="c"),
         ticket(day(2.5), ticket_id="d")],
    ],
    "revenue_churn": [
        [subscription(day(0), 300.0, "started"), subscription(day(20), 100.0, previous_mrr=300.0)],
        [subscription(day(0), 300.0, "started"), subscription(day(5), 250.0, previous_mrr=300.0),
         subscription(day(30), 0.0, "cancelled")],
    ],
    "model_risk": [[login(day(0)), usage(day(3), quantity=4), login(day(20))]],
    "onboarding_stalled": [
        [subscription(day(0), 50.0, "started"), login(day(0.5)), login(day(9.5)), usage(day(12.2)),
         *(login(day(n + 0.3)) for n in range(13, 19))],
        [subscription(day(0), 50.0, "started"), *(login(day(n + 0.5)) for n in range(0, 6)), login(day(15)),
         subscription(day(17), 0.0, "cancelled")],
    ],
    "renewal_at_risk": [
        [subscription(day(0), 90.0, "started", billing_period_months=1, renews_at=day(30)), login(day(1)),
         usage(day(2), quantity=8), failed(day(22)), login(day(26)),
         subscription(day(30), 90.0, "renewed", billing_period_months=1, renews_at=day(60))],
        [subscription(day(0), 300.0, "started", billing_period_months=6, renews_at=day(50)),
         *(usage(day(n + 0.5), quantity=3) for n in range(0, 20)), ticket(day(30), priority="urgent"),
         subscription(day(45), 0.0, "cancelled")],
    ],
}
RULES: list[Rule] = [disengagement.RULE, payment.RULE, support.RULE, revenue.RULE, onboarding.RULE,
                     model_risk.RULE, renewal.RULE]


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.name.value)
def test_the_rule_keeps_its_promises(rule: Rule) -> None:
    check_rule(rule, HISTORIES[rule.name.value])


def test_check_rule_finds_a_rule_whose_next_check_comes_too_late() -> None:
    late = Rule(name=disengagement.RULE.name, fed_by=disengagement.RULE.fed_by, enabled=disengagement.RULE.enabled,
                condition=disengagement.RULE.condition, next_check=lambda state, now, config: None,
                resolution=disengagement.RULE.resolution)
    with pytest.raises(AssertionError, match="next_check"):
        check_rule(late, HISTORIES["disengagement"])


def test_a_rules_file_is_tested_in_ten_lines(tmp_path: Path) -> None:
    rules_file = tmp_path / "rules.toml"
    rules_file.write_text("[payment_failure]\nescalate_at_failures = 3\n")
    rules = load_rules(rules_file)
    alerts = run([login(day(0), "acme"), failed(day(3), "card_expired", customer="acme")], rules)
    assert [(a.rule.value, a.status.value) for a in alerts] == [("payment_failure", "firing")]
    silent = run([login(day(0), "globex"), usage(day(1), quantity=40, customer="globex"),
                  usage(day(31), quantity=5, customer="globex")], until=day(60))
    assert [a.rule.value for a in silent][:1] == ["disengagement"]
