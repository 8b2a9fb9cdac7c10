"""The scorecard on a hand-made case, where every number can be checked by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from schemas.alert import Alert
from stream_app.scorecard import ALL_RULES, format_scorecard, score_alerts
from stream_app.simulator import Truth

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
        alert("b", "payment_failure", 40),            # churn 40 days later: outside the horizon
        alert("b", "disengagement", 70),              # hit, lead 10 days
        alert("c", "disengagement", 10),              # false alarm
        alert("d", "disengagement", 25),              # after churn
    ]
    card = score_alerts(alerts, truth, START, END)
    rules = {s.rule: s for s in card.rules}
    payment, disengagement, total = rules["payment_failure"], rules["disengagement"], rules[ALL_RULES]
    assert (payment.alerts, payment.hits, payment.after_churn) == (2, 1, 0)
    assert payment.precision == 0.5 and payment.churners_caught == 1 and payment.median_lead_days == 20.0
    assert (disengagement.alerts, disengagement.hits, disengagement.after_churn) == (2, 1, 1)
    assert disengagement.median_lead_days == 10.0
    assert (total.alerts, total.hits, total.after_churn, total.churners_caught) == (4, 2, 1, 2)
    assert total.recall == 2 / 3
    # Customer-days at risk: 50 + 80 + 100 + 20 = 250; 3 churns -> 3/250 a day, x30.
    assert card.base_rate == 3 / 250 * 30
    assert card.lift(total) == 0.5 / (3 / 250 * 30)
    text = format_scorecard(card, model_auc=0.71)
    assert "any rule" in text and "0.710" in text and "4 customers, 3 churned" in text
