"""The rules file: documented defaults equal the code's, and bad files are refused clearly."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from churnwatch.rules.config import DEFAULT_RULES_FILE, RulesConfig, RulesFileError, load_rules


def test_the_documented_file_holds_exactly_the_defaults() -> None:
    document = tomllib.loads(DEFAULT_RULES_FILE.read_text())
    assert load_rules() == RulesConfig()
    assert document == RulesConfig().model_dump(mode="json")  # every key documented, no extra


def test_a_partial_file_keeps_the_other_defaults(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text("[disengagement]\nmin_drop = 0.5\nactivity = 'all'\n")
    config = load_rules(path)
    assert config.disengagement.min_drop == 0.5
    assert config.disengagement.activity == "all"
    assert config.disengagement.silent_days == 15
    assert config.payment_failure == RulesConfig().payment_failure


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[disengagement]\nmin_drop = 1.5\n", "disengagement.min_drop"),
        ("[disengagement]\nactivity = 'logins'\n", "disengagement.activity"),
        ("[disengagement]\nsilent_days = 30\ncritical_silent_days = 20\n", "critical_silent_days"),
        ("[payment_failure]\nescalate_at_failures = 4\ncritical_at_failures = 3\n", "critical_at_failures"),
        ("[support_distress]\nmin_tickets = 0\n", "support_distress.min_tickets"),
        ("[support_distress]\nseverity = 'panic'\n", "support_distress.severity"),
        ("[disengagment]\nmin_drop = 0.3\n", "disengagment"),
        ("[state]\nkeep_days = 30\n", "state.keep_days"),
        ("this is = not toml [", "not valid TOML"),
    ],
)
def test_a_bad_file_is_refused_with_the_key_named(tmp_path: Path, text: str, named: str) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(text)
    with pytest.raises(RulesFileError) as info:
        load_rules(path)
    assert named in str(info.value) and str(path) in str(info.value)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RulesFileError, match="cannot read"):
        load_rules(tmp_path / "nope.toml")
