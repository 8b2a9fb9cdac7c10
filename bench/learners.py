"""Learners compared on a backtest's own snapshots: how churnwatch's model was chosen.

    python -m bench.learners eval-out/churnsim-socialnet7/snapshots.jsonl

Reads the snapshots a backtest wrote (observation, label, time) and replays
the online protocol for each learner: a snapshot is scored when it is taken,
and its label is learned a horizon later. Prints the online ROC AUC and log
loss of each, over the snapshots scored once the learner had ``--warm``
labels, beside the log loss of a constant guess on the same snapshots. The
learners are uncalibrated here: only churnwatch's own model adds Platt
scaling. The features are churnwatch's (``churnwatch.rules.features.inputs``) with one
vocabulary for the whole run, so only the learner differs. Needs the
``eval`` extra for the batch learners.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from river import compose, linear_model, optim, preprocessing

from churnwatch.rules.config import ModelFeaturesConfig
from churnwatch.rules.features import FeatureSet, inputs
from churnwatch.rules.state import Observation
from churnwatch.model.roc import StreamingAUC

DAY = 86_400


def river(optimizer: Callable[[], Any], l2: float = 0.0) -> Callable[[], Any]:
    return lambda: compose.Pipeline(preprocessing.StandardScaler(),
                                    linear_model.LogisticRegression(optimizer=optimizer(), l2=l2))


LEARNERS: dict[str, tuple[Callable[[], Any], bool]] = {  # name: (factory, weight the positives)
    "River SGD 0.002, positives weighted (before)": (river(lambda: optim.SGD(0.002), 1e-4), True),
    "River SGD 0.003 (churnwatch)": (river(lambda: optim.SGD(0.003), 1e-4), False),
    "River SGD 0.01": (river(lambda: optim.SGD(0.01)), False),
    "River SGD 0.05": (river(lambda: optim.SGD(0.05)), False),
    "River AdaGrad 0.1": (river(lambda: optim.AdaGrad(0.1)), False),
    "River Adam 0.01": (river(lambda: optim.Adam(0.01)), False),
}


def load(path: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r["label"] is not None and r.get("observation")]


def online(rows: list[dict[str, Any]], values: list[dict[str, float]], make: Callable[[], Any], weighted: bool,
           horizon_days: int, warm: int, early_churn: bool = False) -> list[float | None]:
    """River learners: score at the snapshot, learn at the snapshot plus the horizon.

    ``early_churn`` learns a churn label at the cancellation instead, as soon
    as it is known (what churnwatch did before labels waited for the horizon).
    """
    model = make()

    def known_at(row: dict[str, Any]) -> int:
        if early_churn and row["label"] and row.get("churned_at") is not None:
            return int(row["churned_at"])
        return int(row["taken_at"]) + horizon_days * DAY

    events = sorted([(r["taken_at"], 1, i) for i, r in enumerate(rows)]
                    + [(known_at(r), 0, i) for i, r in enumerate(rows)])
    scores: list[float | None] = [None] * len(rows)
    seen: Counter[int] = Counter()
    for _, kind, i in events:
        if kind == 1:
            if seen.total() >= warm:
                scores[i] = float(model.predict_proba_one(values[i]).get(True, 0.5))
            continue
        label = rows[i]["label"]
        weight = min(5.0, max(1.0, seen[0] / max(seen[1], 1))) if weighted and label else 1.0
        model.learn_one(values[i], bool(label), w=weight)
        seen[label] += 1
    return scores


def batch(rows: list[dict[str, Any]], values: list[dict[str, float]], c: float, every_days: int,
          horizon_days: int, warm: int) -> list[float | None]:
    """A logistic regression refitted every ``every_days`` on every label known by then."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    names = sorted({k for v in values for k in v})
    matrix = np.array([[v.get(k, 0.0) for k in names] for v in values])
    labels = np.array([r["label"] for r in rows])
    known_at = np.array([r["taken_at"] + horizon_days * DAY for r in rows])
    order = sorted(range(len(rows)), key=lambda i: rows[i]["taken_at"])
    scores: list[float | None] = [None] * len(rows)
    model, fitted_at = None, None
    for i in order:
        now = rows[i]["taken_at"]
        if fitted_at is None or now - fitted_at >= every_days * DAY:
            fitted_at = now
            known = known_at <= now
            if known.sum() >= warm and 0 < labels[known].sum() < known.sum():
                model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000)).fit(
                    matrix[known], labels[known])
        if model is not None:
            scores[i] = float(model.predict_proba(matrix[i:i + 1])[0, 1])
    return scores


def judge(rows: list[dict[str, Any]], scores: list[float | None]) -> tuple[float | None, float | None,
                                                                         float | None, int]:
    """ROC AUC, log loss, the log loss of a constant guess at the churn rate (same snapshots), count."""
    auc = StreamingAUC()
    loss, n, churned = 0.0, 0, 0
    for row, score in zip(rows, scores, strict=True):
        if score is None:
            continue
        auc.add(score, row["label"])
        p = min(max(score, 1e-9), 1 - 1e-9)
        loss -= math.log(p if row["label"] else 1 - p)
        n += 1
        churned += row["label"]
    rate = churned / n if n else 0.0
    constant = -(rate * math.log(rate) + (1 - rate) * math.log(1 - rate)) if 0 < rate < 1 else None
    return auc.get(), loss / n if n else None, constant, n


def main() -> int:
    parser = argparse.ArgumentParser(prog="learners", description=__doc__.split("\n\n")[0])
    parser.add_argument("snapshots", type=Path, help="snapshots.jsonl of a backtest (or of make eval)")
    parser.add_argument("--horizon-days", type=int, default=30)
    parser.add_argument("--warm", type=int, default=300, help="labels before scores count")
    args = parser.parse_args()
    rows = load(args.snapshots)
    observations = [Observation.model_validate(r["observation"]) for r in rows]
    frequency: Counter[str] = Counter()
    for o in observations:
        for name, (_, month, _) in o.counts.items():
            frequency[name] += month
    feature_set = FeatureSet.choose(frequency, ModelFeaturesConfig())
    values = [inputs(o, feature_set) for o in observations]
    positives = sum(r["label"] for r in rows)
    print(f"{len(rows):,} labelled snapshots ({positives:,} churn), {len(feature_set.names)} usage names; "
          f"scored from the {args.warm}th label on")
    print(f"  {'learner':<52}{'ROC AUC':>9}{'log loss':>10}{'constant':>10}{'scored':>9}")
    results = {name: online(rows, values, make, weighted, args.horizon_days, args.warm)
               for name, (make, weighted) in LEARNERS.items()}
    if any(r.get("churned_at") is not None for r in rows):
        make, weighted = LEARNERS["River SGD 0.003 (churnwatch)"]
        results["the same, churn labels learned at the cancellation"] = online(
            rows, values, make, weighted, args.horizon_days, args.warm, early_churn=True)
    for c in (0.01, 0.1, 1.0):
        results[f"batch logistic regression, weekly refit, C={c}"] = batch(
            rows, values, c, 7, args.horizon_days, args.warm)
    for name, scores in results.items():
        auc, loss, constant, n = judge(rows, scores)
        print(f"  {name:<52}{'-' if auc is None else f'{auc:.3f}':>9}"
              f"{'-' if loss is None else f'{loss:.4f}':>10}{'-' if constant is None else f'{constant:.4f}':>10}"
              f"{n:>9,}", flush=True)
    print("  (constant: the log loss of always answering the churn rate of the same snapshots)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
