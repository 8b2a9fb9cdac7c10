"""The scoreboard: per-rule precision, recall and lead from the core's verdicts, kept across restarts."""

from __future__ import annotations

import math
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client import generate_latest

from churnwatch.http.metrics import Metrics
from churnwatch.rules.config import OutcomesConfig
from churnwatch.rules.outcomes import Churn, Judged, Verdict
from churnwatch.schemas.alert import RuleName
from churnwatch.scoreboard import Scoreboard

PAY, SILENT = RuleName.PAYMENT_FAILURE, RuleName.DISENGAGEMENT


def judged(rule: RuleName, verdict: Verdict, lead: float | None = None) -> Judged:
    return Judged("c", rule, "a", 0, verdict, 1, lead)


def board() -> Scoreboard:
    scores = Scoreboard()
    scores.add([judged(PAY, Verdict.HIT, 10.0), judged(PAY, Verdict.MISS), judged(PAY, Verdict.MISS),
                judged(PAY, Verdict.AFTER_THE_FACT), judged(SILENT, Verdict.HIT, 4.0)],
               [Churn("c1", 1, ((PAY, 10.0), (SILENT, 4.0))), Churn("c2", 2, ((PAY, 20.0),)), Churn("c3", 3, ()),
                Churn("c4", 4, ())])
    return scores


def test_precision_counts_every_verdict_recall_every_churner_and_lead_is_the_median() -> None:
    report = board().report()
    assert (report["churners"], report["churners_warned"], report["recall"]) == (4, 2, 0.5)
    assert report["rules"]["payment_failure"] == {
        "alerts_judged": 4, "hits": 1, "misses": 2, "after_the_fact": 1, "precision": 0.25,
        "churners_warned": 2, "recall": 0.5, "median_lead_days": 15.0}
    assert report["rules"]["disengagement"]["recall"] == 0.25
    nothing = report["rules"]["model_risk"]
    assert (nothing["alerts_judged"], nothing["precision"], nothing["median_lead_days"]) == (0, None, None)


def test_a_saved_board_loads_the_same(tmp_path: Path) -> None:
    path = tmp_path / "rule-outcomes.json"
    board().save(path)
    assert Scoreboard.load(path).report() == board().report()
    assert Scoreboard.load(tmp_path / "none.json").report()["churners"] == 0


def test_the_gauges_read_nan_until_known_and_carry_the_floor() -> None:
    metrics = Metrics()
    metrics.scoreboard(board().report(), OutcomesConfig(precision_floor=0.3))
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(generate_latest(metrics.registry).decode())
               for s in family.samples}
    assert samples[("churnwatch_rule_precision", (("rule", "payment_failure"),))] == 0.25
    assert samples[("churnwatch_rule_outcomes", (("rule", "payment_failure"), ("verdict", "miss")))] == 2
    assert math.isnan(samples[("churnwatch_rule_precision", (("rule", "model_risk"),))])
    assert samples[("churnwatch_rule_precision_floor", ())] == 0.3
    assert samples[("churnwatch_churners", ())] == 4
