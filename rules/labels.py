"""Delayed labels: snapshots of what the model could see, labelled once the future is known.

A snapshot taken at t is labelled when its horizon has passed: 1 if the
customer churned within the horizon after t, else 0. Churn is a cancelled
subscription, or (``label = "inactivity"``, for businesses without
subscriptions) no usage for ``inactive_days`` by the end of the horizon. A
label is only ever given when what it says has happened by ``now``: the model
never learns from the future.

Both labels wait for the end of the horizon, even when a cancellation tells
the answer earlier. Learning churners at once and everyone else a month later
shows the model, at any moment, the recent snapshots of churners only: it
learns "recent means churn" (docs/model.md has the figures).
"""

from __future__ import annotations

from dataclasses import dataclass

from churnwatch.rules.clock_math import DAY, day_of
from churnwatch.rules.config import ModelConfig, RulesConfig
from churnwatch.rules.state import PENDING, CustomerState, Observation, Snapshot, evolve
from churnwatch.rules.state import pending_since as pending_since  # the snapshots' rules, read here too


@dataclass(frozen=True, slots=True)
class Labelled:
    """A snapshot with its label: one training example for the model.

    ``observation`` is None for snapshots of feature set v1 (written by an
    earlier version): the model counts and skips those.
    """

    customer_id: str
    taken_at: int
    observation: Observation | None
    feature_set: str
    probability: float | None
    label: int
    raw: float | None = None




def max_snapshots(config: RulesConfig) -> int:
    return config.model.horizon_days // config.model.snapshot_every_days + 2


def label_snapshots(state: CustomerState, now: int, config: RulesConfig) -> tuple[CustomerState, list[Labelled]]:
    model = config.model
    horizon = model.horizon_days * DAY
    # Snapshots are taken in time order: when the oldest is not yet due, none is
    # (the common case: this runs on every event).
    if not state.snapshots or now < state.snapshots[0].taken_at + horizon:
        return state, []
    waiting: list[Snapshot] = []
    labelled: list[Labelled] = []
    for snapshot in state.snapshots:
        # One still waiting for its model is labelled once scored: a worker reading a backlog ahead of the
        # group's model versions would otherwise label it unscored, where the replay scored it.
        label = None if snapshot.feature_set == PENDING else _label(state, snapshot, now, horizon, config)
        if label is None:
            waiting.append(snapshot)
        else:
            labelled.append(Labelled(state.customer_id, snapshot.taken_at, snapshot.observation,
                                     snapshot.feature_set, snapshot.probability, label, snapshot.raw))
    if not labelled:
        return state, []
    return evolve(state, {"snapshots": tuple(waiting)}), labelled


def _label(state: CustomerState, snapshot: Snapshot, now: int, horizon: int, config: RulesConfig) -> int | None:
    end = snapshot.taken_at + horizon
    if now < end:
        return None
    if config.model.label == "cancellation":
        cancelled = state.cancelled_at
        return 1 if cancelled is not None and snapshot.taken_at < cancelled <= end else 0
    # Activity after the horizon (read later) must not hide a gap within it.
    active_days = [d for d in state.activity if d <= day_of(end)]
    last_active = (max(active_days) + 1) * DAY - 1 if active_days else state.first_seen_at
    return 1 if end - last_active >= config.model.inactive_days * DAY else 0


def churned(state: CustomerState, now: int, config: RulesConfig) -> bool:
    """A churned customer gets no more snapshots: there is nothing left to predict."""
    if config.model.label == "cancellation":
        return state.cancelled_at is not None and state.cancelled_at <= now
    return False


def version_start(at: int, config: ModelConfig) -> int:
    """The start of the model version that scores a snapshot taken at ``at``.

    The model learns in steps of one snapshot period (a week), not a day: a
    version waits for every assessment of the period before it (the alert
    budget ranks against them), and those wait for their own version, so a
    worker reading a backlog makes one version per round trip through the
    labels topic; by the week, that is seven days of event time per trip.
    """
    period = config.snapshot_every_days * DAY
    return at - at % period


def next_snapshot_at(state: CustomerState, config: RulesConfig) -> int | None:
    """Weekly from the first usage: before any, the features say nothing."""
    since = state.last_snapshot_at if state.last_snapshot_at is not None else state.first_activity_at
    return None if since is None else since + config.model.snapshot_every_days * DAY


def take_snapshot(
    state: CustomerState, now: int, config: RulesConfig, observation: Observation, feature_set: str,
    probability: float | None, raw: float | None = None,
) -> CustomerState:
    snapshot = Snapshot(taken_at=now, feature_set=feature_set, observation=observation, probability=probability,
                        raw=raw)
    kept = (*state.snapshots, snapshot)
    if (excess := len(kept) - max_snapshots(config)) > 0:  # the oldest scored ones go; none waiting to be scored
        dropped = {s.taken_at for s in kept if s.feature_set != PENDING}
        dropped = set(sorted(dropped)[:excess])
        kept = tuple(s for s in kept if s.taken_at not in dropped)
    return evolve(state, {"snapshots": kept, "last_snapshot_at": now})


def next_check(state: CustomerState, now: int, config: RulesConfig) -> int | None:
    """The next snapshot or label due with no new event: a churned customer's labels too."""
    horizon = config.model.horizon_days * DAY
    # In time order, so the first label still to come is the earliest.
    due = next((s.taken_at + horizon for s in state.snapshots if s.taken_at + horizon > now), None)
    upcoming = next_snapshot_at(state, config)
    if upcoming is not None and upcoming > now and not churned(state, now, config):
        due = upcoming if due is None else min(due, upcoming)
    return due
