"""Alert texts count in words a person writes: "in 1 day", "over 2 messages"."""

from __future__ import annotations

from churnwatch.rules import RulesConfig
from churnwatch.rules.config import SupportDistressConfig
from churnwatch.rules.wording import counted
from churnwatch.testing import day, run, ticket


def test_one_is_singular_as_shown_not_as_computed() -> None:
    assert [counted(n, "day") for n in (0, 0.4, 0.6, 1, 2, 14.2)] == [
        "0 days", "0 days", "1 day", "1 day", "2 days", "14 days"]


def test_a_rule_with_a_one_day_window_says_one_day() -> None:
    config = RulesConfig(support_distress=SupportDistressConfig(window_days=1, min_tickets=1))
    alerts = run([ticket(day(1))], config, until=day(1.5))
    assert alerts and alerts[0].reasons[0] == "1 ticket opened in 1 day", alerts[0].reasons
