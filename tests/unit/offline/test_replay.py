"""`churnwatch replay`: the core over an event file, offline, on the event clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from churnwatch.rules import RulesConfig
from churnwatch.schemas.alert import Alert
from churnwatch.cli import main
from tests.support.story import expected_alerts, story
from churnwatch.offline.replay import replay_lines
from churnwatch.testing.events import day, login, usage


def test_replay_of_a_mixed_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = story()
    lines = [e.model_dump_json() for e in events]
    assert {json.loads(line)["type"] for line in lines} == {"usage", "payment", "ticket", "subscription"}
    lines.insert(10, "{broken")
    lines.insert(20, json.dumps({"type": "refund", "event_id": "x"}))
    lines.insert(30, lines[5])  # a redelivered event
    lines.append(login(datetime(2100, 1, 1, tzinfo=UTC), customer="acme").model_dump_json())
    source = tmp_path / "events.jsonl"
    source.write_text("\n".join(lines) + "\n")
    out = tmp_path / "alerts.jsonl"

    assert main(["replay", str(source), "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["lines"] == len(lines)
    assert summary["events_applied"] == len(events)
    assert summary["duplicates"] == 1
    assert summary["rejected"] == {"not_json": 1, "unknown_type": 1, "future_event": 1}
    assert summary["customers"] == 9
    written = [Alert.model_validate_json(line) for line in out.read_text().splitlines()]
    assert written == expected_alerts(events, RulesConfig())
    assert sum(summary["alerts"].values()) == len(written)
    assert summary["alerts"]["disengagement/firing"] == 2  # acme: high, then critical


def test_until_sweeps_past_the_last_event(tmp_path: Path) -> None:
    lines = [usage(day(d), quantity=5, customer="quiet").model_dump_json() for d in range(0, 40, 2)]
    lines += [login(day(d), customer="quiet").model_dump_json() for d in range(0, 30, 2)]
    lines.sort(key=lambda line: json.loads(line)["occurred_at"])
    without: list[Alert] = []
    replay_lines(lines, RulesConfig(), without.append)
    assert without == []
    alerts: list[Alert] = []
    summary = replay_lines(lines, RulesConfig(), alerts.append, until=day(60))
    # Purchases fall in the days after the last login on day 28: high when the
    # month-over-month drop passes 30%, critical after 30 silent days.
    assert [(a.rule, a.severity) for a in alerts] == [("disengagement", "high"), ("disengagement", "critical")]
    assert alerts[1].triggered_at == day(58) + timedelta(seconds=1)
    assert summary.sweep_evaluations >= 1


def test_a_bad_rules_file_stops_the_replay_with_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text("[disengagement]\nmin_drop = 7\n")
    source = tmp_path / "events.jsonl"
    source.write_text("")
    assert main(["replay", str(source), "--out", str(tmp_path / "a.jsonl"), "--rules", str(rules)]) == 2
    assert "disengagement.min_drop" in capsys.readouterr().err
