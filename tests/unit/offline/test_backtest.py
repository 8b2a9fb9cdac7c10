"""`churnwatch backtest` on a small generated export: the table, the files, the chart, the reference."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from churnwatch.rules import RulesConfig
from churnwatch.offline.backtest.run import budget_curve, lift_by_decile, run_backtest
from churnwatch.offline.backtest.warehouse import Export
from churnwatch.cli import main
from churnwatch.offline.simulator import simulate, write_simulation
from churnwatch.schemas.alert import Alert, RuleName
from tests.support.warehouse import write_export


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_export(tmp_path_factory.mktemp("export"), accounts=60, days=150)


def test_the_backtest_prints_one_table_and_writes_its_files(export: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["backtest", str(export), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "49,700 event rows" in text and "0 bad rows skipped" in text
    assert "rule" in text and "any rule" in text and "revenue_churn" in text
    assert "model (online, labels 30 days late): ROC AUC" in text
    assert "offline reference (batch logistic regression" in text
    report = json.loads((out / "report.json").read_text())
    assert report["judged"]["churners"] > 0 and 0 < report["judged"]["base_rate"] < 1
    assert report["rules"]["revenue_churn"]["alerts"] > 0
    assert report["offline_reference"]["snapshots"] > 100
    for month in report["offline_reference"]["by_month"].values():
        assert 0 <= month["online_auc"] <= 1 and 0 <= month["reference_auc"] <= 1
    assert len(report["budget_curve"]) == 10 and len(report["lift_by_decile"]) == 10
    alerts = (out / "alerts.jsonl").read_text().splitlines()
    assert alerts and all(json.loads(line)["type"] == "alert" for line in alerts)
    assert (out / "snapshots.jsonl").read_text().count("\n") > 100
    assert (out / "backtest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_alerts_judged_against_the_truth_of_the_export(export: Path) -> None:
    source = Export(export / "events.csv.gz", export / "subscriptions.csv.gz")
    backtest = run_backtest("fixture", source.events(), source.truth, RulesConfig(), report=source.report)
    churned = {t.customer_id: t.churned_at for t in source.truth if t.churned}
    assert backtest.card.churners == sum(1 for at in churned.values()
                                         if at is not None and backtest.start <= at < backtest.end)
    # The commitments to annual billing are not downgrades: every revenue alert names a cheaper tier.
    revenue = [a for a in backtest.alerts if a.rule == "revenue_churn" and a.status == "firing"]
    assert revenue and all("basic_mthly" in a.reasons[0] for a in revenue)
    assert all(a.triggered_at < churned.get(a.customer_id) or not churned.get(a.customer_id)
               for a in backtest.alerts if a.rule == "model_risk")
    curve = budget_curve(backtest)
    assert [p.score.alerts for p in curve] == sorted(p.score.alerts for p in curve)  # a bigger budget sends more
    deciles = lift_by_decile(backtest)
    assert len(deciles) == 10 and sum(deciles) == pytest.approx(10, rel=0.05)


def test_a_jsonl_event_file_with_its_truth_backtests_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--customers", "40", "--days", "90", "--seed", "5",
                 "--out", str(tmp_path / "s.jsonl")]) == 0
    capsys.readouterr()
    assert main(["backtest", "--jsonl", str(tmp_path / "s.jsonl"), "--truth", str(tmp_path / "s.truth.jsonl"),
                 "--out", str(tmp_path / "out"), "--no-reference"]) == 0
    text = capsys.readouterr().out
    assert "s.jsonl:" in text and "any rule" in text and "offline reference" not in text


def test_a_model_saved_by_a_backtest_speaks_from_the_first_week_of_what_follows(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The deployment path: backtest the history, save its model, start from it (docs/model.md)."""
    events, truth = simulate(300, 240, seed=3)
    split = datetime(2026, 5, 31, tzinfo=UTC)  # the simulator's usage starts 2026-01-01
    write_simulation(tmp_path / "history.jsonl", [e for e in events if e.occurred_at < split], truth)
    write_simulation(tmp_path / "after.jsonl", [e for e in events if e.occurred_at >= split], truth)
    saved = tmp_path / "start.pkl"
    assert main(["backtest", "--jsonl", str(tmp_path / "history.jsonl"), "--truth",
                 str(tmp_path / "history.truth.jsonl"), "--out", str(tmp_path / "bt"), "--no-reference",
                 "--save-model", str(saved)]) == 0
    history = capsys.readouterr().out
    assert f"CHURNWATCH_MODEL_START={saved}" in history
    ready = re.search(r"ready \(warm, gate open\) from (\d{4}-\d\d-\d\d)", history)
    assert ready is not None and ready.group(1) < f"{split:%Y-%m-%d}", history

    def model_alerts(*start: str) -> list[datetime]:
        out = tmp_path / "alerts.jsonl"
        assert main(["replay", str(tmp_path / "after.jsonl"), "--out", str(out), *start]) == 0
        alerts = [Alert.model_validate_json(line) for line in out.read_text().splitlines()]
        return sorted(a.triggered_at for a in alerts if a.rule == RuleName.MODEL_RISK)

    assert model_alerts() == []  # a new model is still warming up when the file ends
    started = model_alerts("--model-start", str(saved))
    assert started and started[0] < split + timedelta(days=14), started[:3]

    # The same as a backtest of the whole file: a deployment from the split replays nothing before it.
    write_simulation(tmp_path / "all.jsonl", events, truth)
    before = sum(1 for e in events if e.occurred_at < split)
    for start, says_ready in (((), "never"), (("--model-start", str(saved)), ready.group(1))):
        out = tmp_path / f"deployed{len(start)}"
        assert main(["backtest", "--jsonl", str(tmp_path / "all.jsonl"), "--truth", str(tmp_path / "all.truth.jsonl"),
                     "--out", str(out), "--no-reference", "--begin", f"{split:%Y-%m-%d}", *start]) == 0
        text = capsys.readouterr().out
        assert f"a deployment from {split:%Y-%m-%d}: the {before:,} events before it not replayed" in text
        assert f"judged {split:%Y-%m-%d} .. " in text
        assert f"ready (warm, gate open) from {says_ready}" in text, text
        alerts = [Alert.model_validate_json(line) for line in (out / "alerts.jsonl").read_text().splitlines()]
        assert all(a.triggered_at >= split for a in alerts)
        assert any(a.rule == RuleName.MODEL_RISK for a in alerts) == bool(start)


def test_a_starting_model_that_cannot_be_read_ends_the_command_in_one_line(tmp_path: Path) -> None:
    events = tmp_path / "e.jsonl"
    events.write_text("")
    (tmp_path / "bad.pkl").write_bytes(b"not a model")
    for path, says in ((tmp_path / "bad.pkl", "is not a churnwatch model file"),
                       (tmp_path / "missing.pkl", "cannot read the starting model")):
        with pytest.raises(SystemExit) as ended:
            main(["replay", str(events), "--out", str(tmp_path / "a.jsonl"), "--model-start", str(path)])
        assert says in str(ended.value.code)
