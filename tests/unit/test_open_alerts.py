"""The board of open alerts behind ``GET /alerts``: what the alerts topic says is open, most urgent first."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from churnwatch.offline.replay import Replay
from churnwatch.offline.simulator import simulate
from churnwatch.open_alerts import MAX_LIMIT, AlertQuery, OpenAlerts, urgency
from churnwatch.rules import RulesConfig
from churnwatch.schemas.alert import Alert, AlertStatus, RuleName, Severity

AT = datetime(2026, 3, 1, tzinfo=UTC)


def alert(alert_id: str, sequence: int = 0, status: AlertStatus = AlertStatus.FIRING, priority: int = 50,
          severity: Severity = Severity.WARNING, rule: RuleName = RuleName.PAYMENT_FAILURE,
          customer: str = "c1", started: datetime = AT) -> Alert:
    return Alert(alert_id=alert_id, customer_id=customer, rule=rule, status=status, severity=severity,
                 priority=priority, risk_score=0.5, reasons=["r"], evidence={}, recommended_action="call",
                 triggered_at=started, episode_started_at=started, sequence=sequence)


def test_the_board_holds_what_the_replay_left_open() -> None:
    """Every alert of a simulated base, in the order sent: open on the board are exactly the open episodes."""
    events, _ = simulate(60, 90, 3)
    sent: list[Alert] = []
    replay = Replay(RulesConfig(), sent.append)
    for event in events:
        replay.feed_event(event)
    board = OpenAlerts()
    for offset, each in enumerate(sent):
        board.take(0, offset, each)
    still_open = {e.alert_id for state in replay.states.values() for e in state.episodes.values()}
    assert still_open and len(still_open) < len({a.alert_id for a in sent})  # some closed, some not
    assert set(board.open) == still_open
    # Each shown as its newest message.
    newest = {a.alert_id: a for a in sent}
    assert all(board.open[i] == newest[i] for i in still_open)


def test_repeats_and_stale_messages_change_nothing() -> None:
    board = OpenAlerts()
    assert board.take(0, 0, alert("a", 0))
    assert board.take(0, 1, alert("a", 1, severity=Severity.HIGH))
    assert not board.take(0, 2, alert("a", 0))  # a repeat of the opening, read again after a crash
    assert board.open["a"].severity is Severity.HIGH
    assert board.take(0, 3, alert("a", 2, AlertStatus.RESOLVED))
    assert not board.take(0, 4, alert("a", 1))  # resolved stays resolved
    assert board.open == {} and board.read == {0: 5}


def test_ranked_by_priority_then_severity_then_the_oldest_episode_filtered_and_paged() -> None:
    board = OpenAlerts()
    given = [alert("low", priority=10), alert("high", priority=90),
             alert("crit", priority=60, severity=Severity.CRITICAL, rule=RuleName.DISENGAGEMENT),
             alert("warn-old", priority=60, started=datetime(2026, 2, 1, tzinfo=UTC)),
             alert("warn-new", priority=60, customer="c2")]
    for offset, each in enumerate(given):
        board.take(offset % 2, offset, each)
    everything = board.answer(AlertQuery())
    assert [a["alert_id"] for a in everything["alerts"]] == ["high", "crit", "warn-old", "warn-new", "low"]
    assert (everything["open"], everything["by_rule"]) == (5, {"disengagement": 1, "payment_failure": 4})
    assert [a["alert_id"] for a in board.answer(AlertQuery(limit=2, offset=1))["alerts"]] == ["crit", "warn-old"]
    assert board.answer(AlertQuery(rule=RuleName.DISENGAGEMENT))["open"] == 1
    assert board.answer(AlertQuery(min_severity=Severity.HIGH))["open"] == 1
    assert board.answer(AlertQuery(min_priority=60))["open"] == 4
    assert [a["alert_id"] for a in board.answer(AlertQuery(customer_id="c2"))["alerts"]] == ["warn-new"]
    assert sorted(given, key=urgency)[0].alert_id == "high"


def test_saved_and_loaded_it_reads_on_from_where_it_stopped(tmp_path: Path) -> None:
    board = OpenAlerts()
    board.take(3, 7, alert("a"))
    board.take(3, 8, alert("b"))
    board.take(3, 9, alert("b", 1, AlertStatus.RESOLVED))
    board.save(tmp_path / "open.json")
    again = OpenAlerts.load(tmp_path / "open.json")
    assert (again.open, again.read, again.resolved) == (board.open, {3: 10}, {"b": 1})
    assert OpenAlerts.load(tmp_path / "none.json").read == {}  # no file: the topic from its start


@pytest.mark.parametrize(("params", "error"), [
    ({"rule": "churn"}, "rule must be one of"),
    ({"severity": "urgent"}, "severity must be one of"),
    ({"limit": "0"}, f"limit must be a whole number from 1 to {MAX_LIMIT}"),
    ({"limit": "ten"}, "limit must be a whole number"),
    ({"min_priority": "101"}, "min_priority must be a whole number from 0 to 100"),
    ({"sort": "age"}, "unknown parameter 'sort'"),
])
def test_a_query_it_cannot_answer_is_refused_with_a_sentence(params: dict[str, str], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        AlertQuery.parse(params)


def test_a_query_reads_its_parameters() -> None:
    query = AlertQuery.parse({"rule": "model_risk", "severity": "high", "min_priority": "20", "limit": "5",
                              "offset": "10", "customer_id": "c9"})
    assert query == AlertQuery(RuleName.MODEL_RISK, Severity.HIGH, 20, "c9", 5, 10)
