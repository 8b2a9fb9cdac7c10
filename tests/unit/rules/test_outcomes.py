"""Every alert judged by what the customer did next: hits, misses, after the fact, churners warned."""

from __future__ import annotations

from churnwatch.rules import RulesConfig, apply_event
from churnwatch.rules.clock_math import DAY, to_seconds
from churnwatch.rules.config import ModelConfig
from churnwatch.rules.engine import Transition, evaluate
from churnwatch.rules.outcomes import Churn, Verdict
from churnwatch.rules.state import CustomerState
from churnwatch.schemas.alert import RuleName
from churnwatch.schemas.events import Event
from churnwatch.testing import day, failed, subscription

RULES = RulesConfig(model=ModelConfig(enabled=False))


def feed(events: list[Event], state: CustomerState | None = None) -> tuple[CustomerState, list[Transition]]:
    steps = []
    for event in events:
        step = apply_event(state, event, event.occurred_at, RULES)
        assert step.state is not None
        state = step.state
        steps.append(step)
    assert state is not None
    return state, steps


def warned_by_a_failed_payment() -> CustomerState:
    state, steps = feed([subscription(day(1), 100.0, action="started"), failed(day(10))])
    assert [a.rule for a in steps[-1].alerts] == [RuleName.PAYMENT_FAILURE]
    assert [(w.rule, w.at) for w in state.warnings] == [(RuleName.PAYMENT_FAILURE, to_seconds(day(10)))]
    return state


def cancelled(state: CustomerState, at: float) -> tuple[CustomerState, Transition]:
    """The cancellation read, then the sweep's tick it made due."""
    state, (step,) = feed([subscription(day(at), 0.0, action="cancelled")], state)
    assert step.judged == () and step.churns == ()  # an event's own time judges nothing
    assert state.next_due_at == to_seconds(day(at))
    swept = evaluate(state, day(at), RULES)
    assert swept.state is not None
    return swept.state, swept


def test_a_cancellation_within_the_horizon_makes_the_alert_a_hit_with_its_lead_and_counts_a_churner_warned() -> None:
    state, step = cancelled(warned_by_a_failed_payment(), 20)
    (judged,) = step.judged
    assert (judged.rule, judged.verdict, judged.lead_days) == (RuleName.PAYMENT_FAILURE, Verdict.HIT, 10.0)
    assert step.churns == (Churn("c1", to_seconds(day(20)), ((RuleName.PAYMENT_FAILURE, 10.0),)),)
    assert state.warnings == ()
    # Counted once: the next look at this customer finds nothing new.
    later = evaluate(state, day(25), RULES)
    assert later.judged == () and later.churns == ()


def test_no_cancellation_within_the_horizon_is_a_miss_judged_on_the_sweeps_clock_only() -> None:
    state = warned_by_a_failed_payment()
    end = to_seconds(day(10)) + RULES.outcomes.horizon_days * DAY
    assert state.next_due_at is not None and state.next_due_at <= end  # a silent customer is swept then
    before = evaluate(state, day(39.9), RULES)
    assert before.judged == ()
    # An event's own time does not judge a miss: a cancellation may still be queued on another topic.
    _, (on_event,) = feed([failed(day(45), invoice="inv-2")], state)
    assert on_event.judged == ()
    swept = evaluate(state, day(40), RULES)
    assert [(j.verdict, j.lead_days) for j in swept.judged] == [(Verdict.MISS, None)]
    assert swept.state is not None and swept.state.warnings == ()
    # A cancellation after the horizon: a churner no rule warned in time.
    _, late = cancelled(swept.state, 50)
    assert late.judged == () and late.churns == (Churn("c1", to_seconds(day(50)), ()),)


def test_an_alert_sent_after_a_cancellation_read_late_is_after_the_fact() -> None:
    state, (step,) = feed([subscription(day(8), 0.0, action="cancelled")], warned_by_a_failed_payment())
    swept = evaluate(state, day(10), RULES)
    assert [j.verdict for j in swept.judged] == [Verdict.AFTER_THE_FACT]
    assert swept.churns == (Churn("c1", to_seconds(day(8)), ()),)


def test_a_warning_opened_after_the_cancellation_was_read_but_before_it_happened_is_credited_to_that_churn() -> None:
    """A tick queued behind the cancellation judges the customer at an earlier time and may warn then."""
    state, _ = feed([subscription(day(1), 100.0, action="started"), subscription(day(20), 0.0, action="cancelled"),
                     failed(day(10))])  # the payment topic lagging: read after the cancellation
    assert [w.at for w in state.warnings] == [to_seconds(day(10))]
    swept = evaluate(state, day(20), RULES)
    assert [(j.verdict, j.lead_days) for j in swept.judged] == [(Verdict.HIT, 10.0)]
    assert swept.churns == (Churn("c1", to_seconds(day(20)), ((RuleName.PAYMENT_FAILURE, 10.0),)),)


def test_outcomes_can_be_turned_off() -> None:
    off = RULES.model_copy(update={"outcomes": RULES.outcomes.model_copy(update={"enabled": False})})
    state = apply_event(None, failed(day(10)), day(10), off).state
    assert state is not None and state.warnings == ()
    assert state.next_due_at is None or state.next_due_at < to_seconds(day(40))
