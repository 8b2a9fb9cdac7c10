"""Renewal at risk: a renewal ahead and a weak sign, through the same runner as the worker."""

from __future__ import annotations

from datetime import datetime

from churnwatch.rules import RulesConfig
from churnwatch.rules.config import RenewalAtRiskConfig
from churnwatch.rules.fold import billing_months
from churnwatch.rules.renewal import lead_days
from churnwatch.schemas.alert import Alert
from churnwatch.schemas.events import SubscriptionEvent
from churnwatch.testing import at, day, failed, fold, login, run, subscription, usage


def _sub(at: datetime, action: str, renews: datetime | None, months: int = 12,
         mrr: float = 400.0) -> SubscriptionEvent:
    return subscription(at, mrr, action, plan="annual", billing_period_months=months, renews_at=renews)


ON = RulesConfig()  # renewal_at_risk is on by default


def _renewal(alerts: list[Alert]) -> list[Alert]:
    return [a for a in alerts if a.rule.value == "renewal_at_risk"]


def _busy(first: int, last: int) -> list:
    return [e for n in range(first, last) for e in (login(day(n + 0.4)), usage(day(n + 0.5), quantity=5))]


def test_an_annual_customer_thinning_is_flagged_ninety_days_before_the_renewal() -> None:
    events = [_sub(day(0), "started", day(365)), *_busy(0, 260), *_busy(260, 300)[::8]]
    alerts = _renewal(run(events, ON, until=day(300)))
    assert alerts and alerts[0].status.value == "firing"
    fired = alerts[0]
    assert fired.triggered_at.date() == day(275).date()  # 90 days before 2027-01-01
    assert "The 12-month subscription renews on 2027-01-01, in 90 days" in fired.reasons[0]
    assert "usage down" in fired.reasons[1] and fired.evidence["revenue_at_stake"] == 4800.0


def test_a_busy_customer_near_renewal_is_not_flagged() -> None:
    assert _renewal(run([_sub(day(0), "started", day(120), months=6), *_busy(0, 120)], ON, until=day(119))) == []


def test_an_open_payment_episode_is_a_weak_sign_and_renewal_resolves_it() -> None:
    events = [_sub(day(0), "started", day(60), months=1, mrr=90.0), *_busy(0, 59),
              failed(day(52), "card_expired"), _sub(day(60), "renewed", day(90), months=1, mrr=90.0)]
    alerts = _renewal(run(events, ON, until=day(61)))
    assert [a.status.value for a in alerts] == ["firing", "resolved"]
    assert "open payment failure episode" in alerts[0].reasons[1]
    assert alerts[0].triggered_at == day(52.4)  # seen at the customer's next event after the failure
    assert alerts[1].reasons[0] == "The subscription renewed, next renewal 2026-04-01"


def test_a_cancellation_resolves_it_and_a_term_below_every_entry_is_not_watched() -> None:
    quiet = [_sub(day(0), "started", day(30), months=1, mrr=20.0), login(day(0.5)),
             _sub(day(25), "cancelled", None, months=1, mrr=0.0)]
    alerts = _renewal(run(quiet, ON, until=day(40)))
    assert [a.status.value for a in alerts] == ["firing", "resolved"]
    assert alerts[1].reasons[0] == "Closed: the customer cancelled on 2026-01-26"
    only_annual = RenewalAtRiskConfig(enabled=True, lead_days={"12": 90})
    assert _renewal(run(quiet, RulesConfig(renewal_at_risk=only_annual), until=day(40))) == []


def test_a_cancellation_read_ahead_of_the_sweep_does_not_hide_the_renewal_at_risk_before_it() -> None:
    """Live, the subscriptions topic can be read ahead: the cancellation is folded before the sweep judges the
    lead window's opening. The tick must judge the subscription as it stood then, as the in-order run does."""
    events = [_sub(day(0), "started", day(30), months=1, mrr=20.0), login(day(0.5)),
              _sub(day(25), "cancelled", None, months=1, mrr=0.0)]
    in_order = _renewal(run(events, ON, until=day(40)))
    state, _ = fold(events, ON)
    state, opened = at(state, day(20), ON)  # a monthly term's lead is 10 days
    _, closed = at(state, day(25), ON)
    assert [(a.alert_id, a.status) for a in _renewal(opened + closed)] == [(a.alert_id, a.status) for a in in_order]
    assert [a.status.value for a in in_order] == ["firing", "resolved"]


def test_the_lead_is_that_of_the_longest_period_at_or_below_the_billing_period() -> None:
    config = RenewalAtRiskConfig(lead_days={"1": 10, "3": 30, "12": 90, "03": 35})
    assert [lead_days(config, months) for months in (1, 2, 3, 6, 11, 12, 24)] == [10, 10, 35, 35, 35, 90, 90]
    assert lead_days(RenewalAtRiskConfig(lead_days={"6": 45}), 3) is None  # no period that short: not watched
    assert config == RenewalAtRiskConfig(lead_days={"1": 10, "3": 30, "12": 90, "03": 35})  # parsed once, unchanged


def test_a_term_without_its_billing_period_is_read_from_its_own_dates() -> None:
    """A billing system that sends only the renewal date: a year from the start is an annual contract."""
    no_field = subscription(day(0), 400.0, "started", plan="annual", renews_at=day(365))
    assert no_field.billing_period_months is None
    events = [no_field, *_busy(0, 260), *_busy(260, 300)[::8]]
    fired = _renewal(run(events, ON, until=day(300)))[0]
    assert fired.triggered_at.date() == day(275).date()  # 90 days ahead, as for billing_period_months = 12
    assert "The 12-month subscription renews on 2027-01-01" in fired.reasons[0]
    for action, renews, months in (("started", day(31), 1), ("renewed", day(91), 3), ("started", day(200), None),
                                   ("plan_changed", day(365), None)):
        event = subscription(day(0), 50.0, action, renews_at=renews)
        assert billing_months(event) == months, (action, renews)
