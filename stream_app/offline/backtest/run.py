"""``churnwatch backtest``: a customer base's history through the worker's core, judged by what happened.

The events (from a warehouse export, or a churnwatch event file with a truth
file) are replayed in time order through ``churnwatch.offline.replay.Replay``, the
same core and model the worker runs, on the event clock. Every alert is
scored against the outcomes in the data (``churnwatch.offline.scorecard``), the
model's online ROC AUC and log loss come from its own delayed labels, and
its labelled snapshots feed an offline reference model and a chart.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from churnwatch.rules import RulesConfig
from churnwatch.rules.labels import Labelled, version_start
from churnwatch.rules.model_risk import stake
from churnwatch.rules.state import Observation
from churnwatch.schemas.alert import Alert, RuleName
from churnwatch.schemas.events import Event
from churnwatch.schemas.intake import Rejection, validate_event
from churnwatch.offline.backtest.warehouse import ImportReport
from churnwatch.model import ChurnModel
from churnwatch.model.ranking import WeeklyRanking
from churnwatch.offline.replay import Replay, ReplaySummary
from churnwatch.offline.scorecard import RuleScore, Scorecard, churn_times, rule_rows, score_alerts, score_openings
from churnwatch.offline.simulator import Truth

# The judged period starts this long after the first usage event by default:
# the model's first labels come a horizon after its first snapshots, a week
# after a customer's first use, so before then only the rules can speak.
WARM_UP_DAYS = 45
BUDGET_SHARES = (0.005, 0.01, 0.02, 0.03, 0.05, 0.08, 0.1, 0.15, 0.2, 0.3)


@dataclass(frozen=True)
class SnapshotScore:
    """A snapshot as the backtest keeps it: its score when taken, its label once known."""

    customer_id: str
    taken_at: int
    probability: float | None
    label: int | None
    observation: Observation | None


@dataclass
class Backtest:
    name: str
    config: RulesConfig
    start: datetime
    end: datetime
    alerts: list[Alert]
    snapshots: list[SnapshotScore]
    truth: list[Truth]
    summary: ReplaySummary
    card: Scorecard
    seconds: float
    report: ImportReport | None = None
    rejected_lines: dict[str, int] = field(default_factory=dict)
    begin: datetime | None = None  # events before it were not replayed (a deployment starting then)
    not_replayed: int = 0  # how many

    @property
    def model(self) -> dict[str, object]:
        return self.summary.model

    def model_score(self) -> RuleScore | None:
        return self.card.by_rule(RuleName.MODEL_RISK.value)


def jsonl_events(path: Path, rejected: dict[str, int], on_progress: Callable[[int], None] | None = None
                 ) -> Iterator[Event]:
    """Validated events of a churnwatch event file; bad lines counted by reason."""
    with path.open("rb") as lines:
        for n, line in enumerate(lines):
            if on_progress is not None and n % 20_000 == 0:
                on_progress(lines.tell())
            if not line.strip():
                continue
            event = validate_event(line)
            if isinstance(event, Rejection):
                rejected[event.reason.value] = rejected.get(event.reason.value, 0) + 1
                continue
            yield event


def run_backtest(
    name: str,
    events: Iterable[Event],
    truth: list[Truth],
    config: RulesConfig,
    start: datetime | None = None,
    end: datetime | None = None,
    on_day: Callable[[datetime], None] | None = None,
    report: ImportReport | None = None,
    model: ChurnModel | None = None,
    begin: datetime | None = None,
) -> Backtest:
    """Replay ``events`` (time-ordered), then score; ``start``/``end`` bound the judged period; ``model``: the
    one to start from and leave learned (a new one if None).

    ``begin``: the events before it are not replayed, and alerts are judged from it (unless ``start`` says
    otherwise): what a worker deployed then would have done, knowing no customer, with a new model or the
    one it was started with (the deployment path: backtest the history, start with its model).
    """
    began = time.perf_counter()
    alerts: list[Alert] = []
    snapshots: list[SnapshotScore] = []

    def labelled(example: Labelled) -> None:
        snapshots.append(SnapshotScore(example.customer_id, example.taken_at, example.probability,
                                       example.label, example.observation))

    replay = Replay(config, alerts.append, model=model, on_labelled=labelled)
    first: datetime | None = None
    shown_day = None
    not_replayed = 0
    for event in events:
        if end is not None and event.occurred_at >= end:
            continue
        if begin is not None and event.occurred_at < begin:
            not_replayed += 1
            continue
        first = first or event.occurred_at
        replay.feed_event(event)
        if on_day is not None and event.occurred_at.date() != shown_day:
            shown_day = event.occurred_at.date()
            on_day(event.occurred_at)
    last = replay.clock.watermark
    until = end or last
    summary = replay.finish(until)
    for state in replay.states.values():
        for snapshot in state.snapshots:
            snapshots.append(SnapshotScore(state.customer_id, snapshot.taken_at, snapshot.probability, None,
                                           snapshot.observation))
    if first is None or until is None:
        raise ValueError("no events to backtest")
    # From the day of the first usage (midnight UTC): a base's subscriptions may have started long
    # before its activity was recorded.
    first_use = summary.first_usage_at or first
    judged_from = start or begin or (
        first_use.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=WARM_UP_DAYS))
    card = score_alerts(alerts, truth, judged_from, until, config.model.horizon_days)
    return Backtest(name, config, judged_from, until, alerts, snapshots, truth, summary, card,
                    time.perf_counter() - began, report, begin=begin, not_replayed=not_replayed)


# --- what the snapshots say beyond the alerts ------------------------------------------


@dataclass(frozen=True)
class BudgetPoint:
    share: float
    score: RuleScore


def budget_curve(backtest: Backtest, shares: Iterable[float] = BUDGET_SHARES) -> list[BudgetPoint]:
    """Precision and recall had model_risk alerted at each budget: the choice of a budget, in numbers.

    Each scored snapshot is ranked against the week before its model version, as the
    worker ranks; the gate is left out (every scored snapshot could alert), so the
    curve shows what the ranking is worth.
    """
    config = backtest.config.model
    scored = sorted((s for s in backtest.snapshots if s.probability is not None and s.observation is not None),
                    key=lambda s: (s.taken_at, s.customer_id))
    ranking = WeeklyRanking(config.snapshot_every_days)
    ranked: list[tuple[float, str, datetime]] = []
    stakes = [stake(s.probability or 0.0, s.observation.mrr if s.observation else 0.0, config) for s in scored]
    recorded = 0
    for snapshot, at_stake in zip(scored, stakes, strict=True):
        version = version_start(snapshot.taken_at, config)
        while recorded < len(scored) and scored[recorded].taken_at < version:
            ranking.record(scored[recorded].taken_at, stakes[recorded])
            recorded += 1
        rank = ranking.rank(at_stake, version)
        if rank is not None:
            ranked.append((rank.share, snapshot.customer_id, datetime.fromtimestamp(snapshot.taken_at, UTC)))
    truth = {t.customer_id: t for t in backtest.truth}
    churners = churn_times(backtest.truth, backtest.start, backtest.end)
    horizon = timedelta(days=config.horizon_days)
    return [
        BudgetPoint(share, score_openings(f"top {share:.1%}", [(c, t) for r, c, t in ranked if r < share],
                                          truth, churners, horizon, backtest.start, backtest.end))
        for share in shares
    ]


def lift_by_decile(backtest: Backtest) -> list[float]:
    """Churn rate of each tenth of the labelled snapshots by score (riskiest last), over the overall rate."""
    pairs = sorted((s.probability, s.label) for s in backtest.snapshots
                   if s.probability is not None and s.label is not None)
    if not pairs or not any(label for _, label in pairs):
        return []
    overall = sum(label for _, label in pairs) / len(pairs)
    size = len(pairs) / 10
    deciles = [pairs[round(i * size):round((i + 1) * size)] for i in range(10)]
    return [sum(label for _, label in d) / len(d) / overall if d else 0.0 for d in deciles]


# --- the report ---------------------------------------------------------------------------


def format_report(backtest: Backtest, reference: dict[str, object] | None) -> str:
    """The one table: per rule, then the model, then the offline reference beside it."""
    card = backtest.card
    lines: list[str] = []
    if backtest.report is not None:
        r = backtest.report
        bad = sum(r.bad_rows.values())
        lines.append(
            f"{backtest.name}: {r.event_rows:,} event rows, {r.subscription_rows:,} subscription rows, "
            f"{bad:,} bad rows skipped" + (f" ({_reasons(r.bad_rows)})" if bad else "")
            + f"; {r.dropped_after_end:,} events at or after the end ({_day(r.end)}) left out")
        lines.append(
            f"  {r.customers:,} customers, {r.churned:,} churned; events: {_reasons(r.events)}")
    elif backtest.rejected_lines:
        lines.append(f"{backtest.name}: rejected lines {_reasons(backtest.rejected_lines)}")
    else:
        lines.append(f"{backtest.name}:")
    replayed = sum(backtest.summary.outcomes.values())
    if backtest.begin is not None:
        lines.append(f"a deployment from {_day(backtest.begin)}: the {backtest.not_replayed:,} events before it "
                     "not replayed")
    lines.append(f"replayed {replayed:,} events in {backtest.seconds:.0f} s "
                 f"({replayed / backtest.seconds:,.0f} events/s through the core)" if backtest.seconds else "")
    lines.append(_table(card))
    lines.append(_model_line(backtest))
    if reference is not None:
        lines.append(_reference_line(reference))
    return "\n".join(line for line in lines if line)


def _table(card: Scorecard) -> str:
    return "\n".join([
        f"judged {card.start:%Y-%m-%d} .. {card.end:%Y-%m-%d}, horizon {card.horizon_days} days: {card.churners} "
        f"churners; a random active customer on a random day churns within the horizon {card.base_rate:.2%} of "
        f"the time (the precision of a random alert)",
        *rule_rows(card),
    ])


def _model_line(backtest: Backtest) -> str:
    m = backtest.model
    config = backtest.config.model
    auc = m.get("roc_auc")
    budget = (f"top {config.budget_share:.1%} a week" if config.budget_per_day <= 0
              else f"{config.budget_per_day:g} a day")
    selection = f"budget {budget} by {config.rank_by.replace('_', ' ')}" if config.selection == "budget" \
        else f"threshold {config.threshold:.0%}"
    return (
        f"model (online, labels {config.horizon_days} days late): ROC AUC "
        f"{'-' if auc is None else f'{auc:.3f}'} over {m.get('scored_labels', 0):,} scored snapshots "
        f"({m.get('positive_labels', 0):,} churn of {m.get('labels', 0):,} labels); log loss "
        f"{_num(m.get('log_loss'))} (a constant guess: {_num(m.get('log_loss_constant'))}); gate "
        f"{'open' if m.get('gate_open') else 'shut'} at the end (recent ROC AUC {_num(m.get('recent_roc_auc'), 3)}, "
        f"its {config.gate_confidence:.0%} lower bound {_num(m.get('recent_roc_auc_bound'), 3)}, floor "
        f"{config.auc_floor}); ready (warm, gate open) from {_ready_from(m.get('first_ready_at'))}; "
        f"model_risk {selection}")


def _ready_from(moment: object) -> str:
    return moment[:10] if isinstance(moment, str) else "never"


def _reference_line(reference: dict[str, object]) -> str:
    if "skipped" in reference:
        return f"offline reference: skipped ({reference['skipped']})"
    return (
        f"offline reference (batch logistic regression on per-event-name counts, {reference['folds']}-fold CV "
        f"grouped by customer, on the same labelled snapshots): ROC AUC {reference['auc_mean']:.3f} "
        f"± {reference['auc_std']:.3f} (pooled {reference['pooled_auc']:.3f}; on the snapshots the online model "
        f"scored: {_num(reference.get('pooled_auc_scored'), 3)})")


def _reasons(counts: dict[str, int]) -> str:
    return ", ".join(f"{reason} {n:,}" for reason, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def _day(moment: datetime | None) -> str:
    return "-" if moment is None else f"{moment:%Y-%m-%d}"


def _num(value: object, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if isinstance(value, float) else "-"


def as_json(backtest: Backtest, reference: dict[str, object] | None,
            curve: list[BudgetPoint], deciles: list[float]) -> str:
    card = backtest.card

    def rule(s: RuleScore) -> dict[str, object]:
        return {"alerts": s.alerts, "episodes_judged": s.episodes_judged, "hits": s.hits,
                "precision": s.precision, "lift": card.lift(s), "recall": s.recall,
                "median_lead_days": s.median_lead_days, "after_churn": s.after_churn,
                "churners_caught": s.churners_caught}

    document = {
        "name": backtest.name,
        "judged": {"from": backtest.start.isoformat(), "until": backtest.end.isoformat(),
                   "horizon_days": card.horizon_days, "churners": card.churners, "customers": card.customers,
                   "base_rate": card.base_rate},
        "rules": {s.rule: rule(s) for s in card.rules},
        "model": backtest.model,
        "offline_reference": reference,
        "budget_curve": [{"share": p.share, **rule(p.score)} for p in curve],
        "lift_by_decile": deciles,
        "replay": backtest.summary.as_dict(),
        "seconds": round(backtest.seconds, 1),
        "import": None if backtest.report is None else {
            "event_rows": backtest.report.event_rows, "subscription_rows": backtest.report.subscription_rows,
            "bad_rows": dict(backtest.report.bad_rows), "events": dict(backtest.report.events),
            "dropped_after_end": backtest.report.dropped_after_end, "customers": backtest.report.customers,
            "churned": backtest.report.churned, "end": _day(backtest.report.end)},
    }
    return json.dumps(document, indent=2, default=str)
