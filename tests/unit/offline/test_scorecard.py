"""The scorecard on a hand-made case, where every number can be checked by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from churnwatch.schemas.alert import Alert
from churnwatch.offline.scorecard import ALL_RULES, base_rate, format_scorecard, score_alerts
from churnwatch.offline.simulator import Truth

START = datetime(2026, 1, 1, tzinfo=UTC)
END = START + timedelta(days=100)


def at(day: float) -> datetime:
    return START + timedelta(days=day)


def alert(customer: str, rule: str, day: float, status: str = "firing", sequence: int = 0) -> Alert:
    return Alert(alert_id=f"{customer}-{rule}-{day}", customer_id=customer, rule=rule, status=status,
                 severity="high", priority=50, risk_score=0.5, reasons=["r"], evidence={},
                 recommended_action="a", triggered_at=at(day), episode_started_at=at(day), sequence=sequence)


def test_a_hand_made_scorecard() -> None:
    truth = [
        Truth("a", "x", True, at(50)),   # churns day 50
        Truth("b", "x", True, at(80)),   # churns day 80
        Truth("c", "x", False, None),    # stays
        Truth("d", "x", True, at(20)),   # churns day 20, never caught in time
    ]
    alerts = [
        alert("a", "payment_failure", 30),            # hit, lead 20 days
        alert("a", "payment_failure", 31, sequence=1),  # an escalation: not a new alert
        alert("a", "payment_failure", 40, status="resolved", sequence=2),
        alert("a", "payment_failure", 45),            # a new episode within the horizon: the same problem
        alert("b", "payment_failure", 40),            # churn 40 days later: outside the horizon
        alert("b", "disengagement", 70),              # hit, lead 10 days; its horizon ends at day 100: judged
        alert("c", "disengagement", 10),              # false alarm
        alert("c", "disengagement", 75),              # horizon ends after day 100: not judged
        alert("d", "disengagement", 25),              # after churn
    ]
    card = score_alerts(alerts, truth, START, END)
    payment, disengagement = card.by_rule("payment_failure"), card.by_rule("disengagement")
    total = card.by_rule(ALL_RULES)
    assert payment is not None and disengagement is not None and total is not None
    assert (payment.alerts, payment.episodes_judged, payment.hits, payment.after_churn) == (3, 2, 1, 0)
    assert payment.precision == 0.5 and payment.churners_caught == 1 and payment.median_lead_days == 20.0
    assert (disengagement.alerts, disengagement.episodes_judged, disengagement.hits) == (3, 2, 1)
    assert disengagement.after_churn == 1 and disengagement.median_lead_days == 10.0
    # Any rule: a@30 (a@45 merged), b@40, b@70, c@10, c@75 (not judged).
    assert (total.alerts, total.episodes_judged, total.hits, total.churners_caught) == (6, 4, 2, 2)
    assert total.recall == 2 / 3  # a and b of the three churners
    assert card.churners == 3
    text = format_scorecard(card, model_auc=0.71)
    assert "any rule" in text and "0.710" in text and "4 customers, 3 churned" in text


def test_the_base_rate_is_a_random_active_customer_day() -> None:
    horizon = timedelta(days=30)
    # Judged days 0..70. "a" churns on day 50: days 20..49 are hits (30 of its 50 active days).
    # "b" joins on day 60 and stays: 11 active days. "c" stays all 71 days.
    truth = [Truth("a", "", True, at(50)), Truth("b", "", False, None, since=at(60)), Truth("c", "", False, None)]
    assert base_rate(truth, START, END, horizon) == pytest.approx(30 / (50 + 11 + 71))
