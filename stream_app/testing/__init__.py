"""A kit for testing churnwatch rules, and your own rules file, without a broker.

    from pathlib import Path

    from churnwatch.rules import load_rules
    from churnwatch.testing import day, failed, login, run

    def test_an_expired_card_is_an_alert() -> None:
        rules = load_rules(Path("my-rules.toml"))
        alerts = run([login(day(0), "acme"), failed(day(3), "card_expired", customer="acme")], rules)
        assert [a.rule.value for a in alerts] == ["payment_failure"]

``run`` takes events through the same runner as the worker (sweeps
included); ``fold`` and ``at`` are the core for one customer; ``check_rule``
checks a rule's promises to the engine on histories you give.
"""

from churnwatch.testing.events import T0, day, failed, login, subscription, succeeded, ticket, usage
from churnwatch.testing.running import at, fold, run

__all__ = ["T0", "at", "check_rule", "day", "failed", "fold", "login", "run", "subscription", "succeeded",
           "ticket", "usage"]


def __getattr__(name: str) -> object:
    # check_rule needs hypothesis (the ``test`` extra); importing the kit does not.
    if name == "check_rule":
        from churnwatch.testing.rule_checks import check_rule

        return check_rule
    raise AttributeError(name)
