"""The functional core: (state, event, now) -> (new state, alerts).

No Faust, no Kafka, no wall clock: the live worker and the offline replay call
the same two functions, so what a test proves here holds in production.

* ``apply_event`` folds an event into the customer's facts and re-evaluates
  the rules at ``max(now, event time)``.
* ``evaluate`` re-evaluates with no event, for the sweep: time passing alone
  can open (silence) or close (windows ageing out) an episode.

Both set ``state.next_due_at``: when, with no event, the answer could change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from churnwatch.rules import (
    disengagement,
    labels,
    model_risk,
    onboarding,
    outcomes,
    payment,
    renewal,
    revenue,
    support,
)
from churnwatch.rules.clock_math import HOUR, iso_date, to_seconds
from churnwatch.rules.condition import Rule
from churnwatch.rules.config import RulesConfig
from churnwatch.rules.episodes import reconcile
from churnwatch.rules.fold import Outcome, fold_event, new_state
from churnwatch.rules.features import observe
from churnwatch.rules.labels import Labelled
from churnwatch.rules.model_risk import ModelView, stake
from churnwatch.rules.state import CustomerState, Risk, evolve
from churnwatch.schemas.alert import Alert, RuleName
from churnwatch.schemas.events import EVENT_KINDS, Event

RULES: tuple[Rule, ...] = (
    disengagement.RULE, payment.RULE, support.RULE, revenue.RULE, onboarding.RULE, model_risk.RULE,
    renewal.RULE,
)
DEFAULT_CONFIG = RulesConfig()
# The rules each event model feeds, from their ``fed_by``.
FED_BY: dict[type, list[Rule]] = {kind.model: [r for r in RULES if kind.model in r.fed_by] for kind in EVENT_KINDS}


@dataclass(frozen=True, slots=True)
class Assessment:
    """A customer's stake as the model assessed it: the shell adds it to the week's ranking."""

    at: int
    stake: float


@dataclass(frozen=True, slots=True)
class Transition:
    """The state to store (None: nothing to store) and the alerts to publish."""

    state: CustomerState | None
    alerts: tuple[Alert, ...]
    outcome: Outcome = Outcome.APPLIED  # DUPLICATE: nothing changed
    labelled: tuple[Labelled, ...] = ()  # training examples whose label is now known
    assessed: tuple[Assessment, ...] = ()  # for the model's weekly ranking
    judged: tuple[outcomes.Judged, ...] = ()  # alerts whose outcome is now known
    churns: tuple[outcomes.Churn, ...] = ()  # a cancellation, and which rules warned before it


def apply_event(
    state: CustomerState | None,
    event: Event,
    now: datetime,
    config: RulesConfig = DEFAULT_CONFIG,
    scorer: ModelView | None = None,
) -> Transition:
    """Fold one validated event in and re-evaluate the rules that this type of event feeds.

    ``now`` is the caller's clock: wall time live, the event's own time on the
    event clock. The caller checks ``is_future`` first, against its own
    reference time.

    Only the rules fed by the event's type are evaluated: a customer's events
    arrive on four topics read at different speeds, so a ticket may be read
    before the usage that came earlier; judging silence at the ticket's time
    would call a customer silent whose logins are still in the queue. Rules
    not fed by this event are aged by the sweep, on a clock that waits for
    every queue.

    ``scorer`` is a read-only view of the online model (the model itself
    lives in the shell); without one, snapshots are still taken, unscored.
    """
    folded, outcome = fold_event(state or new_state(event), event, config)
    if outcome is Outcome.DUPLICATE:
        return Transition(state, (), outcome)
    at = to_seconds(event.occurred_at)
    return _evaluate(folded, FED_BY[type(event)], max(to_seconds(now), at), at, config, scorer, outcome)


def is_future(event: Event, reference: datetime | None, config: RulesConfig = DEFAULT_CONFIG) -> bool:
    """Too far ahead of the reference time to trust: such events go to dead letters.

    With no reference nothing is.
    """
    if reference is None:
        return False
    return to_seconds(event.occurred_at) > to_seconds(reference) + config.state.max_future_hours * HOUR


def evaluate(
    state: CustomerState,
    now: datetime,
    config: RulesConfig = DEFAULT_CONFIG,
    scorer: ModelView | None = None,
) -> Transition:
    """Re-evaluate every rule with no new event (the sweep); alerts are stamped with ``now``."""
    clock = to_seconds(now)
    return _evaluate(state, list(RULES), clock, clock, config, scorer, sweep=True)


def _model_step(
    state: CustomerState, now: int, config: RulesConfig, scorer: ModelView | None
) -> tuple[CustomerState, list[Labelled], list[Assessment]]:
    """Label what the horizon has settled; observe, score and assess if a snapshot is due.

    Observations and scores are made only for a snapshot (weekly): the rule
    judges that score, and a lookup scores the customer afresh. Scoring every
    event would cost most of the core's time for numbers nobody reads (the
    model does not change when it predicts, so skipping them changes nothing).
    """
    when = max(now, state.evaluated_at.get(RuleName.MODEL_RISK, now))
    state, labelled = labels.label_snapshots(state, when, config)
    if not labels.snapshot_due(state, when, config):
        return state, labelled, []
    observation = observe(state, when)
    score = scorer.score(observation, True) if scorer else None
    assessed: list[Assessment] = []
    feature_set = "unscored"
    kept = raw = None
    if score is not None:
        feature_set = score.feature_set
        at_stake = stake(score.probability, observation.mrr, config.model)
        rank = scorer.rank(at_stake, when) if scorer else None
        risk = Risk(assessed=score.probability, assessed_at=when, ready=score.ready, drivers=score.drivers,
                    stake=at_stake, rank=None if rank is None else rank.share,
                    population=0 if rank is None else rank.population)
        state = evolve(state, {"risk": risk})
        # Scores of a model still warming up are neither kept nor ranked: the
        # model's own numbers (ROC AUC, log loss) judge the model in use.
        if score.warm:
            kept, raw = score.probability, score.raw
            assessed.append(Assessment(when, at_stake))
    return labels.take_snapshot(state, when, config, observation, feature_set, kept, raw), labelled, assessed


def _evaluate(
    state: CustomerState,
    rules: list[Rule],
    now: int,
    triggered_at: int,
    config: RulesConfig,
    scorer: ModelView | None,
    outcome: Outcome = Outcome.APPLIED,
    sweep: bool = False,
) -> Transition:
    labelled: list[Labelled] = []
    assessed: list[Assessment] = []
    if config.model.enabled and model_risk.RULE in rules:
        state, labelled, assessed = _model_step(state, now, config, scorer)
    conditions = {}
    resolutions = {}
    evaluated_at = dict(state.evaluated_at)
    # A customer who has cancelled by the time judged has churned: no rule
    # opens an episode for them any more (their silence is expected), and open
    # ones close saying why. Judged by time: a ticket read after the
    # cancellation but sent before it still counts.
    cancelled_at = state.cancelled_at
    for rule in rules:
        enabled = rule.enabled(config)
        if not (enabled or rule.name in state.episodes):
            continue
        # Never judge a rule at an earlier time than before: a sweep tick
        # queued behind a newer event must not reopen what that event closed.
        when = max(now, evaluated_at.get(rule.name, now))
        evaluated_at[rule.name] = when
        cancelled = cancelled_at is not None and cancelled_at <= when
        live = enabled and not cancelled
        conditions[rule.name] = rule.condition(state, when, config) if live else None
        if rule.name in state.episodes:  # only an open episode can be closed, and needs saying why
            resolutions[rule.name] = (
                f"Closed: the customer cancelled on {iso_date(cancelled_at)}"
                if cancelled and cancelled_at is not None
                else rule.resolution(state, when, config)
            )
    episodes, alerts = reconcile(state, conditions, resolutions, triggered_at)
    state = evolve(state, {"episodes": episodes, "evaluated_at": evaluated_at})
    state = outcomes.remember(state, alerts, triggered_at, config)
    state, judged, churns = outcomes.judge(state, now, sweep, config)
    due_times = [
        due for rule in RULES if rule.enabled(config)
        for due in [rule.next_check(state, evaluated_at.get(rule.name, now), config)] if due is not None
    ]
    if config.model.enabled and (due := labels.next_check(state, now, config)) is not None:
        due_times.append(due)
    if (due := outcomes.next_check(state, config)) is not None:
        due_times.append(due)
    # ``state`` is this call's own copy, not yet seen by anyone: set in place
    # rather than copied once more.
    object.__setattr__(state, "next_due_at", min(due_times, default=None))
    state.__pydantic_fields_set__.add("next_due_at")
    return Transition(state, tuple(alerts), outcome, tuple(labelled), tuple(assessed), tuple(judged), tuple(churns))
