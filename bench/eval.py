"""``make eval``: alert quality on customer bases we did not design, beside the references.

Runs ``churnwatch backtest`` on the shared ChurnSim exports (``--datasets``,
default ``../shared/datasets``: ``churnsim-socialnet7``, ``churnsim-crm6``)
and on our own simulator, then prints one comparison table: our online model
against the offline reference computed on the same snapshots in the same run,
and against the references each dataset ships (``baseline-result.json``),
with every rule's alerts. Then, on both exports, the deployment path: a
worker deployed halfway through the history, once with a new model and once
with the model a backtest of the first half left (``--begin``,
``--model-start``), both judged on the second half. Writes ``eval-out/<name>/`` (alerts, report,
chart), ``eval-out/eval-results.json`` and ``eval-out/eval.png``.
About 35 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from churnwatch.model import ChurnModel
from churnwatch.rules import RulesConfig, load_rules
from churnwatch.offline.backtest.run import format_report
from churnwatch.offline.backtest.session import Outcome, Source, run_session
from churnwatch.offline.backtest.warehouse import load_layout
from churnwatch.offline.scorecard import rule_rows
from churnwatch.offline.simulator import simulate, write_simulation

HERE = Path(__file__).parent
# The shared exports, with the column mapping each needs (None: the defaults).
DATASETS = {"churnsim-socialnet7": None, "churnsim-crm6": HERE / "churnsim-crm6.toml"}
SIMULATOR = {"customers": 200, "days": 150, "seed": 7}
# The bases a deployment is judged on halfway through their history, with and without a starting model.
HALVED = ("churnsim-socialnet7", "churnsim-crm6")


@dataclass(frozen=True)
class Row:
    name: str
    outcome: Outcome
    shipped: dict[str, object]  # the dataset's own reference scores, if it has them


def main() -> int:
    parser = argparse.ArgumentParser(prog="eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default=str(HERE.parent.parent / "shared" / "datasets"))
    parser.add_argument("--out", default="eval-out")
    parser.add_argument("--rules", help="rules file (default: the built-in defaults)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    config = load_rules(Path(args.rules) if args.rules else None)
    out = Path(args.out)
    rows: list[Row] = []
    began = time.monotonic()
    for name, mapping in DATASETS.items():
        directory = Path(args.datasets) / name
        if not directory.is_dir():
            print(f"{name}: not found in {args.datasets}, skipped", flush=True)
            continue
        source = Source.export(directory, layout=load_layout(mapping))
        outcome = run_session(source, config, out / name)
        print(format_report(outcome.backtest, outcome.reference), "\n", flush=True)
        rows.append(Row(name, outcome, _shipped(directory / "baseline-result.json")))
        if name in HALVED:
            rows.extend(deployed_halfway(source, outcome, config, out / name))
    with tempfile.TemporaryDirectory() as tmp:
        events, truth = simulate(**SIMULATOR)
        path = Path(tmp) / "simulator.jsonl"
        truth_file = write_simulation(path, events, truth)
        outcome = run_session(Source("churnwatch simulator", path, truth_file=truth_file), config, out / "simulator")
        print(format_report(outcome.backtest, outcome.reference), "\n", flush=True)
        rows.append(Row("churnwatch simulator", outcome, {}))
    print(table(rows))
    (out / "eval-results.json").write_text(json.dumps([summary(row) for row in rows], indent=2) + "\n")
    chart = draw(rows, out / "eval.png")
    print(f"\n{time.monotonic() - began:.0f} s; per dataset in {out}/<name>/, all in {out}/eval-results.json"
          + (f" and {chart}" if isinstance(chart, Path) else f" (no chart: {chart})"))
    return 0


def deployed_halfway(source: Source, whole: Outcome, config: RulesConfig, out: Path) -> list[Row]:
    """A worker deployed halfway through the history, with a new model and with the first half's (the
    deployment path: backtest the history, start with its model); both judged on the second half."""
    report = whole.backtest.report
    if report is None or report.first_event_at is None or report.end is None:
        return []
    middle = report.first_event_at + (report.end - report.first_event_at) / 2
    middle = middle.replace(hour=0, minute=0, second=0, microsecond=0)
    model = ChurnModel(config.model)
    first = run_session(replace(source, end=middle), config, out / "first-half", reference=False, model=model)
    saved = out / "first-half" / "model.pkl"
    model.save(saved)
    print(format_report(first.backtest, None), "\n", flush=True)
    rows = []
    for label, start_with, folder in (("new model", None, "second-half-new-model"),
                                      ("1st half's model", saved, "second-half-first-half-model")):
        started = ChurnModel(config.model) if start_with is None else ChurnModel.start_from(start_with, config.model)
        outcome = run_session(source, config, out / folder, reference=False, model=started, begin=middle)
        print(format_report(outcome.backtest, None), "\n", flush=True)
        rows.append(Row(f"{source.name.removeprefix('churnsim-')} 2nd half, {label}", outcome, {}))
    return rows


def _shipped(path: Path) -> dict[str, object]:
    """The dataset's own references: cross-validated logistic regression, River with late labels."""
    if not path.exists():
        return {}
    document = json.loads(path.read_text())
    batch = document.get("batch_cv_5fold_stratified_grouped_by_account", {}).get("logreg_log1p_std", {})
    river = document.get("online_river_progressive", {}).get("delay_30d", {})
    top = document.get("alerting_top10pct_oof_logreg", {})
    return {"offline_cv_auc": batch.get("auc_mean"), "river_30d_late_auc": river.get("progressive_auc_exact"),
            "offline_top10_lift": top.get("lift"), "offline_top10_recall": top.get("recall")}


def summary(row: Row) -> dict[str, object]:
    backtest = row.outcome.backtest
    card = backtest.card
    rules = {s.rule: {"alerts": s.alerts, "precision": s.precision, "lift": card.lift(s), "recall": s.recall,
                      "median_lead_days": s.median_lead_days, "after_churn": s.after_churn} for s in card.rules}
    return {"name": row.name, "base_rate": card.base_rate, "churners": card.churners, "model": backtest.model,
            "offline_reference_same_snapshots": row.outcome.reference, "shipped_reference": row.shipped,
            "judged_from": backtest.start.isoformat(), "rules": rules, "seconds": round(backtest.seconds, 1)}


def _f(value: object, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, float) else "-"


def table(rows: list[Row]) -> str:
    wide = max([22, *(len(row.name) + 1 for row in rows)])
    lines = [
        "model ROC AUC: ours online (labels 30 days late) | offline reference on the same snapshots (CV, all labels "
        "at once) | the dataset's own: offline CV, River with 30-day-late labels",
        f"  {'base':<{wide}}{'ours':>7}{'ref':>7}{'ref*':>7}{'own CV':>8}{'own River':>11}",
    ]
    for row in rows:
        reference = row.outcome.reference or {}
        lines.append(f"  {row.name:<{wide}}{_f(row.outcome.backtest.model.get('roc_auc')):>7}"
                     f"{_f(reference.get('pooled_auc')):>7}{_f(reference.get('pooled_auc_scored')):>7}"
                     f"{_f(row.shipped.get('offline_cv_auc')):>8}{_f(row.shipped.get('river_30d_late_auc')):>11}")
    lines.append("  (ref* = the reference on just the snapshots our model scored after its warm-up)")
    for row in rows:
        card = row.outcome.backtest.card
        ready = row.outcome.backtest.model.get("first_ready_at")
        lines.append(f"{row.name}: {card.churners} churners; a random alert's precision {card.base_rate:.2%}; "
                     f"judged from {card.start:%Y-%m-%d}; the model ready (gate open) from "
                     f"{ready[:10] if isinstance(ready, str) else 'never'}")
        lines.extend(rule_rows(card, indent="    "))
    return "\n".join(lines)


def draw(rows: list[Row], path: Path) -> Path | str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: pip install 'churnwatch[eval]'"
    figure, axis = plt.subplots(figsize=(10, 4.8))
    series = [
        ("ours, online", lambda r: r.outcome.backtest.model.get("roc_auc")),
        ("reference, same snapshots", lambda r: (r.outcome.reference or {}).get("pooled_auc")),
        ("dataset's offline CV", lambda r: r.shipped.get("offline_cv_auc")),
        ("dataset's River, 30 d late", lambda r: r.shipped.get("river_30d_late_auc")),
    ]
    width = 0.2
    for i, (label, value) in enumerate(series):
        heights = [value(r) if isinstance(value(r), float) else 0.0 for r in rows]
        axis.bar([n + (i - 1.5) * width for n in range(len(rows))], heights, width, label=label)
    axis.axhline(0.5, color="grey", linestyle="--", linewidth=1)
    axis.set_xticks(range(len(rows)), [r.name.replace(", ", ",\n") for r in rows], fontsize=8)
    axis.set_ylim(0.4, 1.0)
    axis.set_ylabel("ROC AUC")
    axis.set_title("Churn model ROC AUC by customer base (0.5 = guessing)")
    axis.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


if __name__ == "__main__":
    sys.exit(main())
