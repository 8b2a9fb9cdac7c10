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
from churnwatch.rules.state import PENDING, CustomerState, Risk, evolve
from churnwatch.schemas.alert import Alert, RuleName
from churnwatch.schemas.events import EVENT_KINDS, ErasureRequest, Event

RULES: tuple[Rule, ...] = (
    disengagement.RULE, payment.RULE, support.RULE, revenue.RULE, onboarding.RULE, model_risk.RULE,
    renewal.RULE,
)
DEFAULT_CONFIG = RulesConfig()
ALL_RULES = list(RULES)
# The rules each event model feeds, from their ``fed_by``.
FED_BY: dict[type, list[Rule]] = {kind.model: [r for r in RULES if kind.model in r.fed_by] for kind in EVENT_KINDS}
# The rules a config enables, in ``RULES`` order: asked at every evaluation. The config is kept with them, so
# its id is not reused while it is a key.
_ENABLED: dict[int, tuple[RulesConfig, tuple[Rule, ...], frozenset[RuleName]]] = {}


def _enabled(config: RulesConfig) -> tuple[tuple[Rule, ...], frozenset[RuleName]]:
    known = _ENABLED.get(id(config))
    if known is None or known[0] is not config:
        if len(_ENABLED) > 64:  # configs are few (one per run); tests make many
            _ENABLED.clear()
        rules = tuple(r for r in RULES if r.enabled(config))
        known = _ENABLED[id(config)] = (config, rules, frozenset(r.name for r in rules))
    return known[1], known[2]


@dataclass(frozen=True, slots=True)
class Assessment:
    """A customer's stake as the model assessed it: the shell adds it to the week's ranking."""

    at: int
    stake: float
    customer_id: str = ""


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
    position: tuple[str, int] | None = None,
) -> Transition:
    """Fold one validated event in and re-evaluate the rules that this type of event feeds.

    ``now`` is the caller's clock: wall time live, the event's own time on the
    event clock. The caller checks ``is_future`` first, against its own
    reference time. ``position`` is where the event was read (input topic,
    offset; None offline): a message already applied changes nothing, however
    long ago it was (``CustomerState.applied``).

    Only the rules fed by the event's type are evaluated: rules not fed by
    it cannot change with it, and are aged at their due times (the caller
    judges those first, ``catch_up``, as the worker's runner and the replay do).

    ``scorer`` is a read-only view of the online model (the model itself
    lives in the shell); without one, snapshots are still taken, unscored.

    A weekly snapshot due before the event is taken first, at its due time,
    from the state without the event, for a caller that does not catch the
    customer up first: a snapshot is the same wherever it is taken only if it
    sees the same usage.
    """
    at = to_seconds(event.occurred_at)
    if state is not None and repeated(state, event, position):
        return Transition(state, (), Outcome.DUPLICATE)
    if state is not None and state.erased_at is not None:
        if at <= state.erased_at:
            return Transition(state, (), Outcome.ERASED)
        if state.forgotten:  # the customer starts afresh, as a new one
            state = evolve(new_state(event), {"erased_at": state.erased_at, "inputs": state.inputs})
    if isinstance(event, ErasureRequest):
        return erase(state, event, position)
    early: tuple[list[Labelled], list[Assessment]] = ([], [])
    if state is not None and config.model.enabled and model_risk.RULE in FED_BY[type(event)]:
        due = labels.next_snapshot_at(state, config)
        if due is not None and due < at:
            state, early_labelled, early_assessed = _model_step(state, due, config, scorer)
            early = (early_labelled, early_assessed)
    folded, outcome = fold_event(state or new_state(event), event, config)
    if position is not None:
        folded = evolve(folded, {"inputs": {**folded.inputs, position[0]: position[1]}})
    return _evaluate(folded, FED_BY[type(event)], max(to_seconds(now), at), at, config, scorer, outcome,
                     early=early)


def erase(state: CustomerState | None, event: ErasureRequest, position: tuple[str, int] | None = None) -> Transition:
    """The customer forgotten: their open episodes closed, their state replaced by a marker with no facts.

    The marker keeps only the request's time (events from before it are
    refused: a late or re-published one must not rebuild what was erased),
    the newest event time (how far the customer's partition is read) and the
    input offsets (what was applied). Written to the changelog, it is the
    customer's newest value, so compaction removes every older one. Alerts
    not judged yet, snapshots waiting for a label and the model's risk go
    with the rest: the customer's outcomes are never counted.
    """
    at = to_seconds(event.occurred_at)
    if state is None:
        state = new_state(event)
    why = f"Closed: the customer's data was erased on request on {iso_date(at)}"
    _, alerts = reconcile(state, dict.fromkeys(state.episodes), dict.fromkeys(state.episodes, why), at)
    inputs = state.inputs if position is None else {**state.inputs, position[0]: position[1]}
    marker = CustomerState(customer_id=state.customer_id, first_seen_at=at,
                           last_event_at=max(state.last_event_at, at), erased_at=at, inputs=inputs)
    return Transition(marker, tuple(alerts), Outcome.APPLIED)


def repeated(state: CustomerState, event: Event, position: tuple[str, int] | None = None) -> bool:
    """An event this state already holds: read again at an offset it has applied, or a publisher's duplicate."""
    return state.applied(position) or event.event_id in state.recent_event_ids


def catch_up(state: CustomerState, until: int, config: RulesConfig = DEFAULT_CONFIG,
             scorer: ModelView | None = None) -> Transition | None:
    """The customer judged at each of its due times up to ``until``, in order; None when none is due.

    The same evaluations, one per due time, as the replay's sweep makes
    (``evaluate`` at exactly each due time), made at once. Time passes
    first: the worker's runner calls this before it applies an event, so
    what a customer's rules say depends on the customer's events and their
    times only, not on when a sweep came round; a sweep tick that comes
    after an event has passed its due times finds nothing left to judge.
    Stops if a due time fails to move on (it would be judged again).
    """
    joined: Transition | None = None
    last: int | None = None
    while (due := state.next_due_at) is not None and due <= until and (last is None or due > last):
        t = _evaluate(state, ALL_RULES, due, due, config, scorer, sweep=True)  # ``evaluate`` at ``due``
        joined = t if joined is None else then(joined, t)
        assert t.state is not None
        state, last = t.state, due
    return joined


def advance(state: CustomerState, until: int, config: RulesConfig = DEFAULT_CONFIG,
            scorer: ModelView | None = None) -> Transition | None:
    """Time passing to ``until``: the waiting snapshots the model now scores, then the due times (``catch_up``).

    A snapshot taken before the model's version of its week existed waits
    unscored (``rules.state.PENDING``); once the version is made, it is
    scored as of its own time and ``model_risk`` judged as of then, one
    snapshot after the other, as the replay (which scored each when it was
    taken) judged them; no other rule: they were judged at their due times.
    A sweep tick calls this, and the runner before it applies an event. None
    when there is nothing to do (a tick that came after an event had judged
    its due times already).
    """
    done: Transition | None = None
    judged_last = state.evaluated_at.get(RuleName.MODEL_RISK)
    first = None
    while config.model.enabled and scorer is not None and (since := labels.pending_since(state)) is not None:
        if not scorer.covers(since):
            break
        scored = _evaluate(state, [model_risk.RULE], since, since, config, scorer, sweep=True, oldest_only=True,
                           exactly=True)
        assert scored.state is not None
        done = scored if done is None else then(done, scored)
        if labels.pending_since(scored.state) == since:
            break  # not scored after all: leave it for the next tick
        state, first = scored.state, since if first is None else first
    # A cancellation the rule was judged past while the snapshots waited closes the episode as of its time,
    # as the replay closed it, once every snapshot before it is scored.
    cancelled, waiting = state.cancelled_at, labels.pending_since(state)
    if (first is not None and cancelled is not None and judged_last is not None and first < cancelled <= judged_last
            and RuleName.MODEL_RISK in state.episodes and (waiting is None or waiting > cancelled)):
        closed = _evaluate(state, [model_risk.RULE], cancelled, cancelled, config, scorer, sweep=True, exactly=True)
        assert closed.state is not None
        done, state = then(done, closed) if done is not None else closed, closed.state
    passed = catch_up(state, until, config, scorer)
    if passed is not None:
        done = passed if done is None else then(done, passed)
    return done


def then(first: Transition, second: Transition) -> Transition:
    """Two transitions of one customer, one after the other, as one: the second's state and outcome."""
    return Transition(second.state, first.alerts + second.alerts, second.outcome,
                      first.labelled + second.labelled, first.assessed + second.assessed,
                      first.judged + second.judged, first.churns + second.churns)


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
    return _evaluate(state, ALL_RULES, clock, clock, config, scorer, sweep=True)


def _model_step(
    state: CustomerState, now: int, config: RulesConfig, scorer: ModelView | None, oldest_only: bool = False
) -> tuple[CustomerState, list[Labelled], list[Assessment]]:
    """Label what the horizon has settled; observe, score and assess if a snapshot is due.

    Observations and scores are made only for a snapshot (weekly): the rule
    judges that score, and a lookup scores the customer afresh. Scoring every
    event would cost most of the core's time for numbers nobody reads (the
    model does not change when it predicts, so skipping them changes nothing).

    A snapshot is scored by the model's version of its week (``covers``): when
    that version is not made yet (a worker waits for every partition's labels
    of the week before), the snapshot is kept unscored (``PENDING``) and scored
    at a later evaluation, as of its own time.
    """
    when = max(now, state.evaluated_at.get(RuleName.MODEL_RISK, now))
    labelled: list[Labelled] = []
    assessed: list[Assessment] = []
    # Each weekly snapshot at its due time, whenever it is taken (a sweep
    # tick at every due time, as the replay has, takes them one by one; a
    # stale tick or an event read ahead may come later), from what was known
    # then. Bounded: what is left is due at once, for the next evaluation.
    for _ in range(labels.max_snapshots(config)):
        due = labels.next_snapshot_at(state, config)
        if due is None or due > when or labels.churned(state, due, config):
            break
        state, settled = labels.label_snapshots(state, due, config)
        labelled += settled
        state = labels.take_snapshot(state, due, config, observe(state, due),
                                     "unscored" if scorer is None else PENDING, None)
    state, settled = labels.label_snapshots(state, when, config)
    labelled += settled
    if scorer is not None and labels.pending_since(state) is not None:
        state = _score_pending(state, config, scorer, assessed, oldest_only)
    return state, labelled, assessed


def _score_pending(
    state: CustomerState, config: RulesConfig, scorer: ModelView, assessed: list[Assessment],
    oldest_only: bool = False,
) -> CustomerState:
    """Score the snapshots the model's version now covers (or only the oldest), each as of its own time; the
    newest scored sets the risk."""
    snapshots = list(state.snapshots)
    risk = state.risk
    scored = 0
    for i, snapshot in enumerate(snapshots):
        if snapshot.feature_set != PENDING or snapshot.observation is None or not scorer.covers(
                snapshot.taken_at):
            continue
        if oldest_only and scored:
            break
        scored += 1
        at = snapshot.taken_at
        score = scorer.score(snapshot.observation, True)
        at_stake = stake(score.probability, snapshot.observation.mrr, config.model)
        rank = scorer.rank(at_stake, at)
        if risk is None or at >= risk.assessed_at:
            risk = Risk(assessed=score.probability, assessed_at=at, ready=score.ready, drivers=score.drivers,
                        stake=at_stake, rank=None if rank is None else rank.share,
                        population=0 if rank is None else rank.population,
                        budget=None if rank is None else rank.budget)
        # Scores of a model still warming up are neither kept nor ranked: the
        # model's own numbers (ROC AUC, log loss) judge the model in use.
        kept = score.warm
        snapshots[i] = evolve(snapshot, {"feature_set": score.feature_set,
                                         "probability": score.probability if kept else None,
                                         "raw": score.raw if kept else None})
        if kept:
            assessed.append(Assessment(at, at_stake, state.customer_id))
    return evolve(state, {"snapshots": tuple(snapshots), "risk": risk})


def _evaluate(
    state: CustomerState,
    rules: list[Rule],
    now: int,
    triggered_at: int,
    config: RulesConfig,
    scorer: ModelView | None,
    outcome: Outcome = Outcome.APPLIED,
    sweep: bool = False,
    early: tuple[list[Labelled], list[Assessment]] = ([], []),
    oldest_only: bool = False,
    exactly: bool = False,
) -> Transition:
    """The rules judged at ``now`` (or later, where one was judged later before), their episodes reconciled,
    alerts stamped ``triggered_at``. ``oldest_only``: of the snapshots waiting for their model version, only
    the oldest the model now covers is scored; ``exactly``: judged at ``now`` even if judged later before (a
    snapshot scored late is judged as of its own time, as the replay judged it)."""
    labelled, assessed = early
    risk_before = state.risk
    if config.model.enabled and model_risk.RULE in rules:
        state, more_labelled, more_assessed = _model_step(state, now, config, scorer, oldest_only)
        labelled, assessed = [*labelled, *more_labelled], [*assessed, *more_assessed]
    # A snapshot scored late (it waited for its week's model version while the
    # customer's later events were read) is judged as of its own time, as the
    # replay, which scored it then, judged it: while later snapshots still
    # wait, and when it opens an episode. A cancellation read meanwhile closes
    # the episode once every snapshot before it is scored.
    risk = state.risk
    late_risk_at = (risk.assessed_at if risk is not None and (
        labels.pending_since(state) is not None
        or (risk is not risk_before and RuleName.MODEL_RISK not in state.episodes)) else None)
    conditions = {}
    resolutions = {}
    evaluated_at = dict(state.evaluated_at)
    # A customer who has cancelled by the time judged has churned: no rule
    # opens an episode for them any more (their silence is expected), and open
    # ones close saying why. Judged by time: a ticket read after the
    # cancellation but sent before it still counts.
    cancelled_at = state.cancelled_at
    enabled_rules, enabled_names = _enabled(config)
    episodes_before = state.episodes
    for rule in rules:
        name = rule.name
        enabled = name in enabled_names
        if not (enabled or name in episodes_before):
            continue
        # Never judge a rule at an earlier time than before: a sweep tick
        # queued behind a newer event must not reopen what that event closed.
        last = evaluated_at.get(name)
        when = now if exactly or last is None or last < now else last
        if last is None or when > last:
            evaluated_at[name] = when
        judged_at = (min(when, late_risk_at) if name is RuleName.MODEL_RISK and late_risk_at and not exactly
                     else when)
        cancelled = cancelled_at is not None and cancelled_at <= judged_at
        live = enabled and not cancelled
        conditions[name] = rule.condition(state, judged_at, config) if live else None
        if name in episodes_before:  # only an open episode can be closed, and needs saying why
            resolutions[name] = (
                f"Closed: the customer cancelled on {iso_date(cancelled_at)}"
                if cancelled and cancelled_at is not None
                else rule.resolution(state, when, config)
            )
    episodes, alerts = reconcile(state, conditions, resolutions, triggered_at)
    state = evolve(state, {"episodes": episodes, "evaluated_at": evaluated_at})
    state = outcomes.remember(state, alerts, config)
    state, judged, churns = outcomes.judge(state, now, sweep, config)
    due_times = [
        due for rule in enabled_rules
        if (due := rule.next_check(state, evaluated_at.get(rule.name, now), config)) is not None
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
