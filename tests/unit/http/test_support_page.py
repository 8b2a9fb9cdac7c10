"""The page at ``/`` rendered from its three answers: escaped, ranked as given, empty states said in words."""

from __future__ import annotations

from churnwatch.http.support_page import render_page
from churnwatch.open_alerts import AlertQuery, OpenAlerts
from churnwatch.scoreboard import Scoreboard
from tests.unit.test_open_alerts import alert

MODEL_SHUT = {"gate_open": False, "recent_roc_auc": None, "recent_roc_auc_bound": None, "labels": 0,
              "learned_until": None}


def outcomes() -> dict:
    return {"worker": "w1", "horizon_days": 30, **Scoreboard().report()}


def test_alerts_are_shown_in_the_answers_order_and_as_text() -> None:
    board = OpenAlerts()
    board.take(0, 0, alert("first", priority=90, customer="<script>x</script>"))
    board.take(0, 1, alert("second", priority=20))
    page = render_page(board.answer(AlertQuery()), outcomes(), MODEL_SHUT, 0.6, {})
    assert page.index('data-alert-id="first"') < page.index('data-alert-id="second"')
    assert "<script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page
    assert 'href="/customers/%3Cscript%3Ex%3C%2Fscript%3E"' in page
    assert '<p id="count">2 open</p>' in page and '<a href="/?rule=payment_failure">payment_failure (2)</a>' in page
    assert "The model is silent" in page and "No alert judged yet." in page


def test_a_filtered_page_marks_its_rule_and_an_empty_one_says_so() -> None:
    page = render_page(OpenAlerts().answer(AlertQuery()), outcomes(), {**MODEL_SHUT, "gate_open": True}, 0.6,
                       {"rule": "model_risk"})
    assert '<p id="none">No open alerts.</p>' in page and '<a href="/">all</a>' in page
    assert "The model is speaking" in page
