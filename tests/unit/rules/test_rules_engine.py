"""The core at its boundaries: each rule, episodes, time, duplicates; no broker, no clock."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from churnwatch.rules import CustomerState, Outcome, RulesConfig, apply_event
from churnwatch.rules.alert_ids import alert_id
from churnwatch.rules.priority import priority
from churnwatch.rules.clock_math import to_seconds
from churnwatch.rules.config import DisengagementConfig, ModelConfig
from churnwatch.rules.engine import is_future
from churnwatch.rules.features import observe
from churnwatch.schemas.alert import RuleName, Severity
from churnwatch.schemas.events import Event
from churnwatch.testing import at, day, failed, login, subscription, succeeded, ticket, usage
from churnwatch.testing import fold as run

SECOND = timedelta(seconds=1)
# For exact due-time checks: the model's weekly snapshots are due times of their own.
NO_MODEL = RulesConfig(model=ModelConfig(enabled=False))


# --- disengagement -------------------------------------------------------------

NOW = day(60)  # months: current = days 31..60, previous = days 1..30


def disengaging(current_purchases: int, silent_for: timedelta, config: RulesConfig = RulesConfig()) -> CustomerState:
    events = [login(day(10)), usage(day(10), quantity=100), login(day(25)), login(NOW - silent_for)]
    if current_purchases:
        events.append(usage(day(31), quantity=current_purchases))
    state, alerts = run(sorted(events, key=lambda e: e.occurred_at), config)
    assert alerts == []
    return state


@pytest.mark.parametrize(("current", "fires"), [(71, False), (70, True), (0, True)])
def test_disengagement_needs_a_drop_of_30_percent(current: int, fires: bool) -> None:
    _, alerts = at(disengaging(current, timedelta(days=20)), NOW)
    assert [a.rule for a in alerts] == ([RuleName.DISENGAGEMENT] if fires else [])


@pytest.mark.parametrize(("silence", "fires"), [
    (timedelta(days=15), False),
    (timedelta(days=15) + SECOND, True),
])
def test_disengagement_needs_more_than_15_days_without_login(silence: timedelta, fires: bool) -> None:
    _, alerts = at(disengaging(50, silence), NOW)
    assert bool(alerts) is fires


def test_disengagement_alert_carries_its_evidence_and_a_stable_id() -> None:
    state = disengaging(50, timedelta(days=20))
    _, (alert,) = at(state, NOW)
    assert alert.severity is Severity.HIGH
    assert alert.evidence["activity_last_30d"] == 50
    assert alert.evidence["activity_previous_30d"] == 100
    assert alert.evidence["drop_ratio"] == 0.5
    assert alert.evidence["days_since_login"] == 20
    assert alert.triggered_at == NOW
    silent_since = to_seconds(NOW - timedelta(days=20))
    assert alert.alert_id == alert_id("c1", RuleName.DISENGAGEMENT, f"silent-since:{silent_since}")
    assert "50%" in alert.reasons[0] and "20 days" in alert.reasons[1]


def test_the_due_time_is_the_first_second_of_silence_and_the_sweep_fires_there() -> None:
    last_login = NOW - timedelta(days=10)
    state = disengaging(50, timedelta(days=10), NO_MODEL)
    assert state.next_due_at == to_seconds(last_login + timedelta(days=15)) + 1
    due = datetime.fromtimestamp(state.next_due_at, NOW.tzinfo)
    _, early = at(state, due - SECOND)
    assert early == []
    _, (alert,) = at(state, due)
    assert alert.rule is RuleName.DISENGAGEMENT


def test_disengagement_escalates_once_then_a_login_resolves_it() -> None:
    state = disengaging(0, timedelta(days=20))
    state, (opened,) = at(state, NOW)
    state, again = at(state, NOW + timedelta(days=5))
    assert again == []  # still true, nothing new to say: no repeat
    state, (escalated,) = at(state, NOW + timedelta(days=10) + SECOND)
    assert escalated.severity is Severity.CRITICAL and escalated.sequence == 1
    assert escalated.alert_id == opened.alert_id
    back = apply_event(state, login(NOW + timedelta(days=11)), NOW + timedelta(days=11))
    (resolved,) = back.alerts
    assert resolved.status == "resolved" and resolved.alert_id == opened.alert_id
    assert resolved.sequence == 2
    assert back.state is not None and back.state.episodes == {}


def test_disengagement_can_count_all_usage() -> None:
    config = RulesConfig(disengagement=DisengagementConfig(activity="all"))
    state, _ = run([usage(day(10), "feature_use", 10), usage(day(45), "feature_use", 9), login(day(40))], config)
    _, alerts = at(state, NOW, config)
    assert alerts == []  # 10 -> 9 plus the login itself: not a 30% drop
    state, _ = run([usage(day(10), "feature_use", 10), usage(day(45), "feature_use", 2), login(day(40))], config)
    _, (alert,) = at(state, NOW, config)
    assert alert.evidence["activity"] == "all"


# --- payment failure -----------------------------------------------------------


def test_a_failed_payment_opens_an_episode_and_success_resolves_it() -> None:
    state, (opened,) = run([failed(day(1), event_id="f-1")])
    assert opened.rule is RuleName.PAYMENT_FAILURE
    assert opened.severity is Severity.WARNING
    assert opened.alert_id == alert_id("c1", RuleName.PAYMENT_FAILURE, "f-1")
    transition = apply_event(state, succeeded(day(2)), day(2))
    (resolved,) = transition.alerts
    assert resolved.status == "resolved" and resolved.alert_id == opened.alert_id
    assert "succeeded" in resolved.reasons[0]


def test_an_expired_card_rates_higher() -> None:
    _, (alert,) = run([failed(day(1), "card_expired")])
    assert alert.severity is Severity.HIGH
    assert "update" in alert.recommended_action


def test_repeated_failures_escalate_instead_of_repeating() -> None:
    _, alerts = run([failed(day(1)), failed(day(5)), failed(day(9)), failed(day(12))])
    assert [(a.severity, a.sequence) for a in alerts] == [
        (Severity.WARNING, 0), (Severity.HIGH, 1), (Severity.CRITICAL, 2)]
    assert len({a.alert_id for a in alerts}) == 1


def test_failures_outside_the_window_do_not_escalate() -> None:
    _, alerts = run([failed(day(1)), failed(day(32))])
    assert [a.severity for a in alerts] == [Severity.WARNING]


def test_a_failure_after_a_success_opens_a_new_episode() -> None:
    _, alerts = run([failed(day(1)), succeeded(day(2)), failed(day(3))])
    assert [a.status for a in alerts] == ["firing", "resolved", "firing"]
    assert alerts[0].alert_id != alerts[2].alert_id


def test_an_unanswered_failure_closes_after_the_episode_limit() -> None:
    state, _ = run([failed(day(1))])
    _, still_open = at(state, day(61))
    assert still_open == []
    _, (closed,) = at(state, day(61) + SECOND)
    assert closed.status == "resolved" and "60 days" in closed.reasons[0]


# --- support distress ----------------------------------------------------------


def test_three_tickets_in_14_days_fire_two_do_not() -> None:
    _, alerts = run([ticket(day(1)), ticket(day(10))])
    assert alerts == []
    _, alerts = run([ticket(day(1)), ticket(day(10)), ticket(day(14.9))])
    assert [(a.rule, a.severity) for a in alerts] == [(RuleName.SUPPORT_DISTRESS, Severity.WARNING)]
    _, alerts = run([ticket(day(1)), ticket(day(10)), ticket(day(15) + SECOND)])
    assert alerts == []  # the first one left the window


def test_an_urgent_ticket_fires_and_closing_it_resolves() -> None:
    state, (alert,) = run([ticket(day(1), priority="urgent", ticket_id="T-9")])
    assert alert.severity is Severity.HIGH and "T-9" in alert.reasons[0]
    transition = apply_event(state, ticket(day(2), action="closed", ticket_id="T-9"), day(2))
    assert [a.status for a in transition.alerts] == ["resolved"]


def test_negative_sentiment_and_cancellation_requests() -> None:
    _, alerts = run([ticket(day(1), sentiment=-0.4), ticket(day(2), action="updated", ticket_id="x", sentiment=-0.7)])
    assert [a.severity for a in alerts] == [Severity.WARNING]
    assert alerts[0].evidence["mean_sentiment"] == -0.55
    _, alerts = run([ticket(day(1), category="cancellation_request")])
    assert [a.severity for a in alerts] == [Severity.CRITICAL]


def test_support_distress_resolves_when_tickets_age_out() -> None:
    state, (opened,) = run([ticket(day(1)), ticket(day(2)), ticket(day(3))], NO_MODEL)
    assert state.next_due_at == to_seconds(day(15))
    _, (resolved,) = at(state, day(15))
    assert resolved.status == "resolved" and resolved.alert_id == opened.alert_id


# --- revenue churn -------------------------------------------------------------


def test_a_downgrade_fires_and_recovery_resolves() -> None:
    _, alerts = run([
        subscription(day(0), 100, action="started"),
        subscription(day(5), 60, previous_mrr=100),
        subscription(day(9), 100, previous_mrr=60),
    ])
    assert [(a.rule, a.status, a.severity) for a in alerts] == [
        (RuleName.REVENUE_CHURN, "firing", Severity.WARNING),
        (RuleName.REVENUE_CHURN, "resolved", Severity.WARNING),
    ]
    assert alerts[0].evidence["mrr_before"] == 100 and alerts[0].evidence["mrr_now"] == 60


def test_a_big_downgrade_is_high_and_ages_out() -> None:
    state, (alert,) = run([subscription(day(0), 100, action="started"), subscription(day(5), 40)])
    assert alert.severity is Severity.HIGH  # previous MRR taken from the state
    _, (resolved,) = at(state, day(35))
    assert resolved.status == "resolved"


def test_an_upgrade_is_not_revenue_churn() -> None:
    _, alerts = run([subscription(day(0), 100, action="started"), subscription(day(5), 150)])
    assert alerts == []


@pytest.mark.parametrize(
    ("before_period", "after_period", "after_mrr", "downgrade"),
    [
        (1, 12, 90, False),  # annual at 10% off: a commitment
        (1, 6, 75, False),  # exactly the largest discount that still counts as one
        (1, 12, 50, True),  # a cheaper tier taken with the longer period
        (12, 1, 90, True),  # back to monthly at a lower price
        (1, 1, 90, True),  # same period, lower price: a seat or tier decrease
        (None, 12, 90, True),  # the old period unknown: nothing can be told
    ],
)
def test_a_longer_commitment_at_a_lower_monthly_price_is_not_a_downgrade(
    before_period: int | None, after_period: int, after_mrr: float, downgrade: bool
) -> None:
    state, alerts = run([
        subscription(day(0), 100, action="started", billing_period_months=before_period),
        subscription(day(5), after_mrr, previous_mrr=100, billing_period_months=after_period),
    ])
    assert [a.rule for a in alerts] == ([RuleName.REVENUE_CHURN] if downgrade else [])
    assert state.subscription is not None and state.subscription.billing_period_months == after_period


# --- time, duplicates, determinism ----------------------------------------------


def test_a_repeated_event_id_changes_nothing() -> None:
    event = failed(day(1))
    state, _ = run([event])
    again = apply_event(state, event, day(1))
    assert again.outcome is Outcome.DUPLICATE and again.state == state and again.alerts == ()


def test_far_future_and_too_old_events() -> None:
    state, _ = run([login(day(100))])
    assert is_future(login(day(101) + SECOND), day(100))
    assert not is_future(login(day(101)), day(100))
    assert not is_future(login(day(900)), None)  # an event clock with no time yet
    old = apply_event(state, login(day(40)), day(100))
    assert old.outcome is Outcome.TOO_OLD
    assert old.state is not None and old.state.activity == state.activity  # its day is out of the window
    kept = apply_event(state, login(day(41)), day(100))
    assert kept.outcome is Outcome.APPLIED


def test_an_event_older_than_the_window_keeps_what_lasts_in_any_order() -> None:
    """A worker catching up reads a ticket of day 70 before the usage topic's day 0."""
    start = subscription(day(0), 500, action="started")
    first_use = usage(day(0), quantity=2)
    later = ticket(day(70))
    in_order, _ = run([start, first_use, later])
    skewed, _ = run([later, start, first_use])
    assert skewed.facts() == in_order.facts()
    assert skewed.subscription is not None and skewed.mrr == 500
    assert skewed.started_at == to_seconds(day(0)) and skewed.first_activity_at == to_seconds(day(0))
    # Its ids are out of the window too, so a repeat is folded again: and changes nothing.
    again = apply_event(skewed, start, day(70))
    assert again.outcome is Outcome.TOO_OLD and again.state is not None
    assert again.state.facts() == skewed.facts()


def test_usage_read_behind_a_customers_other_topics_keeps_its_days() -> None:
    """A worker reads a customer's payments months ahead of their usage: the usage days still count.

    Counted back from the newest event of any topic, the days would fall out
    as they are folded, and the model's weekly snapshot of those weeks would
    see a customer who never used the product.
    """
    ahead = failed(day(100))  # the payments topic, read first
    uses = [usage(day(d), quantity=1) for d in range(10)]
    state, _ = run([ahead, *uses])
    assert sorted(state.activity) == [to_seconds(day(d)) // 86400 for d in range(10)]
    assert observe(state, to_seconds(day(9.5))).active_days_7 == 7
    more = apply_event(state, usage(day(10)), day(10))
    assert more.outcome is Outcome.APPLIED
    # Older than the window counted back from the newest usage: too old, as before.
    assert apply_event(more.state, usage(day(10 - 61)), day(10)).outcome is Outcome.TOO_OLD


def test_late_events_land_in_their_own_day() -> None:
    state, _ = run([usage(day(50), quantity=3), usage(day(20), quantity=5)])
    assert state.activity == {to_seconds(day(50)) // 86400: {"purchase": 3},
                              to_seconds(day(20)) // 86400: {"purchase": 5}}


def test_the_same_input_gives_the_same_alerts() -> None:
    events = [failed(day(1), event_id="a"), ticket(day(2), priority="urgent", ticket_id="u"),
              subscription(day(0), 100, action="started"), subscription(day(3), 10, previous_mrr=100)]
    assert run(events)[1] == run(events)[1]


def test_state_stays_bounded() -> None:
    events: list[Event] = []
    for n in range(400):
        events += [usage(day(n / 2), quantity=2), login(day(n / 2)), failed(day(n / 2)),
                   ticket(day(n / 2), sentiment=0.1)]
    state, _ = run(events)
    assert len(state.activity) <= 60
    assert len(state.recent_event_ids) <= 128
    assert len(state.failures) <= 50 and len(state.tickets_opened) <= 100
    assert len(state.to_bytes()) < 40_000


def test_priority_weighs_severity_first_then_revenue() -> None:
    assert priority(Severity.CRITICAL, 0) > priority(Severity.WARNING, 1_000_000)
    assert priority(Severity.HIGH, 0) > priority(Severity.INFO, 1_000_000)
    assert priority(Severity.WARNING, 5_000) > priority(Severity.WARNING, 50) > priority(Severity.WARNING, 0)
    assert 0 <= priority(Severity.INFO, 0) and priority(Severity.CRITICAL, 10**9) <= 100


def test_alert_priority_follows_the_customers_mrr() -> None:
    _, alerts = run([subscription(day(0), 5_000, action="started"), failed(day(1))])
    assert alerts[0].priority == priority(Severity.WARNING, 5_000)
    assert alerts[0].evidence["mrr"] == 5_000


def test_catching_up_judges_each_due_time_up_to_a_time_as_single_ticks_would() -> None:
    """One call catches a customer up to a time: the same evaluations, alerts and state as one per due time."""
    from churnwatch.rules.clock_math import to_datetime
    from churnwatch.rules.engine import catch_up, evaluate

    events = [subscription(day(0), 99.0, action="started"), *(login(day(d)) for d in range(40)),
              failed(day(41)), ticket(day(42), sentiment=-0.9)]
    state, _ = run(events)
    assert state is not None
    until = to_seconds(day(120))
    one_by_one = []
    current = state
    while (due := current.next_due_at) is not None and due <= until:
        one_by_one.append(evaluate(current, to_datetime(due)))
        current = one_by_one[-1].state
    assert len(one_by_one) > 5  # silent for weeks: many due times between
    at_once = catch_up(state, until)
    assert at_once is not None and at_once.state == one_by_one[-1].state
    assert [a.alert_id for a in at_once.alerts] == [a.alert_id for t in one_by_one for a in t.alerts]
    assert len(at_once.labelled) == sum(len(t.labelled) for t in one_by_one)
    assert catch_up(at_once.state, until) is None  # nothing left to judge: a late tick changes nothing


def test_a_message_read_again_is_a_repeat_however_many_events_came_between() -> None:
    """Exactly once by position: the remembered event ids hold 128, the offsets every message ever applied."""
    state, _ = run([login(day(0))])
    for n in range(300):
        state = apply_event(state, usage(day(1 + n / 100), quantity=1), day(1 + n / 100), position=("usage", n)).state
    first = usage(day(1), quantity=1, event_id="the-first")
    again = apply_event(state, first, day(4), position=("usage", 0))
    assert again.outcome is Outcome.DUPLICATE and again.state is state
    assert apply_event(state, first, day(4), position=("usage", 300)).outcome is Outcome.APPLIED
    assert apply_event(state, first, day(4), position=("payments", 0)).outcome is Outcome.APPLIED
    assert state.inputs == {"usage": 299} and "inputs" not in state.facts()
