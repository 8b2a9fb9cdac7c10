"""``check_rule``: the promises a rule makes to the engine, checked on histories you give.

The engine trusts three things of every rule, and a rule that breaks one
alerts late, never resolves, or alerts differently live than in a backtest:

1. **condition and next_check agree**: with no new event, whether the rule
   holds stays the same from any moment until the ``next_check`` it gave
   (with no ``next_check``, forever), and its severity does not rise before
   then (a fall does not matter: an open episode never steps down). Otherwise
   the sweep looks too late (or never) and a silence is noticed days after it.
2. **resolution is defined**: whenever the rule is judged, it can say in
   words why an open episode ended.
3. **order does not matter**: the same events read in any order (a
   customer's topics are read at different speeds) leave the same facts, so
   the rule says the same at the end.

Needs ``hypothesis`` (the ``test`` extra), which picks the moments and the
orders and shrinks a failure to a small example.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from churnwatch.rules import CustomerState, RulesConfig, evaluate
from churnwatch.rules.clock_math import DAY, to_datetime, to_seconds
from churnwatch.rules.condition import Condition, Rule
from churnwatch.rules.fold import fold_event, new_state
from churnwatch.schemas.events import Event

HORIZON_DAYS = 400  # how far past the last event moments are picked


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a rule says at a moment, as far as the sweep cares: whether it holds, and how badly."""

    holds: bool
    rank: int  # the severity's (-1: does not hold)

    @staticmethod
    def of(condition: Condition | None) -> Verdict:
        return Verdict(condition is not None, -1 if condition is None else condition.severity.rank)


def _facts(events: Sequence[Event], rules: RulesConfig) -> CustomerState:
    state: CustomerState | None = None
    for event in events:
        state, _ = fold_event(state or new_state(event), event, rules)
    assert state is not None
    return state


def check_rule(rule: Rule, histories: Sequence[Sequence[Event]], rules: RulesConfig | None = None,
               examples: int = 60) -> None:
    """Raise ``AssertionError`` (with the smallest counter-example found) if ``rule`` breaks a promise.

    ``histories``: one customer's events each, in time order, chosen to reach
    the rule's interesting states (holding, escalated, resolved, ...).
    """
    config = rules or RulesConfig()
    if not histories or any(not h for h in histories):
        raise ValueError("check_rule needs non-empty histories")
    stories = [list(h) for h in histories]

    @settings(max_examples=examples, deadline=None, derandomize=True)
    @given(st.sampled_from(stories).flatmap(lambda h: st.tuples(
        st.just(h), st.permutations(h),
        st.integers(0, HORIZON_DAYS * DAY), st.floats(0.0, 1.0, allow_nan=False))))
    def promises(case: tuple[list[Event], list[Event], int, float]) -> None:
        history, shuffled, after, fraction = case
        last = max(to_seconds(e.occurred_at) for e in history)
        now = last + after
        # As the worker holds it: every rule judged at ``now`` (episodes open where they hold).
        judged = evaluate(_facts(history, config), to_datetime(now), config).state
        assert judged is not None
        said = Verdict.of(rule.condition(judged, now, config))
        due = rule.next_check(judged, now, config)
        assert due is None or due > now, f"{rule.name}: next_check {due} is not after now {now}"
        later = now + max(1, int(((due if due is not None else now + HORIZON_DAYS * DAY) - now - 1) * fraction))
        if due is None or later < due:
            still = Verdict.of(rule.condition(judged, later, config))
            assert still.holds == said.holds and still.rank <= said.rank, (
                f"{rule.name}: said {said} at {now} and {still} at {later}, but next_check was {due}")
        why = rule.resolution(judged, later, config)
        assert isinstance(why, str) and why.strip(), f"{rule.name}: no resolution at {later}"
        in_order = rule.condition(_facts(history, config), now, config)
        any_order = rule.condition(_facts(shuffled, config), now, config)
        assert in_order == any_order, f"{rule.name}: the order of the events changed the answer at {now}"

    promises()
