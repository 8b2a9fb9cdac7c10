"""Onboarding stalled: a new customer judged on their first weeks, through the same runner as the worker."""

from __future__ import annotations

from churnwatch.rules import RulesConfig
from churnwatch.rules.config import OnboardingStalledConfig
from churnwatch.schemas.alert import Alert
from churnwatch.testing import day, login, run, subscription, usage


def _onboarding(alerts: list[Alert]) -> list[tuple[str, str, str]]:
    return [(a.status.value, a.severity.value, a.triggered_at.date().isoformat())
            for a in alerts if a.rule.value == "onboarding_stalled"]


def test_a_customer_active_on_few_of_their_first_days_is_flagged_on_day_seven_by_the_sweep() -> None:
    events = [subscription(day(0), 50.0, "started"), login(day(0.5)), login(day(2.5))]
    alerts = run(events, until=day(10))
    assert _onboarding(alerts) == [("firing", "warning", "2026-01-08")]  # 2 of 7 days, judged at day 7
    (fired,) = [a for a in alerts if a.rule.value == "onboarding_stalled"]
    assert fired.evidence["active_days"] == 2 and fired.evidence["days_since_start"] == 7
    assert "Active on 2 of the 7 days since the subscription started on 2026-01-01" in fired.reasons[0]


def test_a_customer_never_seen_active_is_raised_one_level() -> None:
    alerts = run([subscription(day(0), 50.0, "started")], until=day(8))
    assert _onboarding(alerts) == [("firing", "high", "2026-01-08")]


def test_an_active_new_customer_is_never_flagged() -> None:
    events = [subscription(day(0), 50.0, "started"), *(login(day(n + 0.5)) for n in range(25))]
    assert _onboarding(run(events, until=day(30))) == []


def test_activation_catching_up_resolves_it_and_the_window_end_closes_it() -> None:
    caught_up = [subscription(day(0), 50.0, "started"), login(day(0.5)),
                 *(login(day(n + 0.5)) for n in range(7, 21))]
    assert [s for s, _, _ in _onboarding(run(caught_up, until=day(30)))] == ["firing", "resolved"]
    resolved = [a for a in run(caught_up, until=day(30)) if a.rule.value == "onboarding_stalled"][-1]
    assert resolved.reasons[0].startswith("Activation caught up")
    # Caught up, then quiet again: a second episode, with an id of its own.
    relapsed = [a for a in run(caught_up[:10], until=day(30)) if a.rule.value == "onboarding_stalled"]
    assert [a.status.value for a in relapsed] == ["firing", "resolved", "firing", "resolved"]
    assert len({a.alert_id for a in relapsed}) == 2
    stalled = [subscription(day(0), 50.0, "started"), login(day(0.5))]
    closed = [a for a in run(stalled, until=day(30)) if a.rule.value == "onboarding_stalled"]
    assert [(a.status.value, a.triggered_at.date().isoformat()) for a in closed] == [
        ("firing", "2026-01-08"), ("resolved", "2026-01-22")]
    assert "21-day onboarding window ended" in closed[-1].reasons[0]


def test_a_customer_whose_start_was_not_seen_is_not_judged() -> None:
    assert _onboarding(run([login(day(0.5)), usage(day(1))], until=day(10))) == []


def test_key_events_count_as_activation_and_their_number_can_be_required() -> None:
    rules = RulesConfig(onboarding_stalled=OnboardingStalledConfig(key_events=("purchase",), min_key_events=3))
    busy_but_not_buying = [subscription(day(0), 50.0, "started"), *(login(day(n + 0.5)) for n in range(8)),
                           *(usage(day(n + 0.6), "purchase") for n in (1, 3, 5, 6))]
    # 4 purchase days of 7 (57%) and 4 purchases: activated.
    assert _onboarding(run(busy_but_not_buying, rules, until=day(8))) == []
    fewer = busy_but_not_buying[:-2]  # purchases on 2 days of 7 (29%)
    fired = [a for a in run(fewer, rules, until=day(8)) if a.rule.value == "onboarding_stalled"]
    assert fired and "Used purchase on 2 of the 7 days" in fired[0].reasons[0]
    assert "2 key events so far, fewer than the 3 expected" in fired[0].reasons[1]


def test_first_weeks_no_longer_held_are_not_judged() -> None:
    """On a backlog a customer's payment from two months ahead may be folded before their first usage, whose
    days then fall outside the kept window: those days are a gap, not a customer who never got going."""
    from churnwatch.rules import apply_event
    from churnwatch.testing import failed

    events = [subscription(day(0), 50.0, "started"), failed(day(64.5)),
              *(login(day(n + 0.3)) for n in range(0, 8))]
    state, alerts = None, []
    for event in events:  # each judged at its own time, as the worker's event clock would
        transition = apply_event(state, event, event.occurred_at)
        state = transition.state
        alerts += transition.alerts
    assert _onboarding(alerts) == []
