"""The offline reference: what an analyst's batch model makes of the same snapshots.

Logistic regression (signed log1p, standard scaling) on per-event-name
counts over the 28 days before each snapshot (scaled to 28 days for young
accounts, as "Fighting Churn With Data" does), their total, active days,
days since the last activity and tenure, cross-validated in folds grouped by
customer (a customer's snapshots never sit on both sides). It sees every
label at once and trains on the future of what it tests: a ceiling the
online model, which must wait a horizon for each label, is measured against.

Needs scikit-learn (the ``eval`` extra).
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from churnwatch.rules.features import LONG_DAYS, MAX_DAYS

if TYPE_CHECKING:
    from churnwatch.offline.backtest.run import SnapshotScore

MAX_NAMES = 64
FOLDS = 5


def _by_month(labelled: Sequence[SnapshotScore], out_of_fold: Sequence[float],
              auc: Callable[[list[int], list[float]], float]) -> dict[str, object]:
    """Per month of snapshot time: the online and the reference ROC AUC on the snapshots both scored.

    Pooled over months, an AUC also rewards telling months apart (a month when
    many churn from one when few do), which the reference can do from the future
    and an online model cannot; within a month both face the same question.
    """
    months: dict[str, list[int]] = {}
    for i, s in enumerate(labelled):
        if s.probability is not None and s.label is not None:
            months.setdefault(datetime.fromtimestamp(s.taken_at, UTC).strftime("%Y-%m"), []).append(i)
    out: dict[str, object] = {}
    for month, rows in sorted(months.items()):
        labels = [int(labelled[i].label or 0) for i in rows]
        if 0 < sum(labels) < len(labels):
            out[month] = {
                "snapshots": len(rows), "churn": sum(labels),
                "online_auc": round(float(auc(labels, [float(labelled[i].probability or 0.0) for i in rows])), 4),
                "reference_auc": round(float(auc(labels, [float(out_of_fold[i]) for i in rows])), 4),
            }
    return out


def offline_reference(snapshots: Sequence[SnapshotScore], folds: int = FOLDS, seed: int = 0) -> dict[str, object]:
    try:
        import numpy as np
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import roc_auc_score
        from sklearn.model_selection import StratifiedGroupKFold
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import FunctionTransformer, StandardScaler
    except ImportError:
        return {"skipped": "scikit-learn is not installed: pip install 'churnwatch[eval]'"}
    labelled = [s for s in snapshots if s.label is not None and s.observation is not None]
    positives = sum(s.label or 0 for s in labelled)
    if positives < folds or len(labelled) - positives < folds:
        return {"skipped": f"{positives} churn labels of {len(labelled)}: too few for {folds} folds"}
    frequency: Counter[str] = Counter()
    for s in labelled:
        assert s.observation is not None
        for name, (_, month, _) in s.observation.counts.items():
            frequency[name] += month
    names = [name for name, _ in frequency.most_common(MAX_NAMES)]
    rows = []
    for s in labelled:
        o = s.observation
        assert o is not None
        scale = LONG_DAYS / min(LONG_DAYS, max(o.age_days, 1.0))
        counts = [o.counts.get(name, (0, 0, 0))[1] * scale for name in names]
        rows.append([*counts, sum(c[1] for c in o.counts.values()) * scale, o.active_days_28 * scale,
                     MAX_DAYS if o.days_since_activity is None else o.days_since_activity, o.tenure_days])
    x = np.array(rows, dtype=float)
    y = np.array([s.label for s in labelled])
    groups = np.array([s.customer_id for s in labelled])
    model = make_pipeline(FunctionTransformer(lambda a: np.sign(a) * np.log1p(np.abs(a))), StandardScaler(),
                          LogisticRegression(max_iter=2000))
    out_of_fold = np.zeros(len(y))
    aucs = []
    for train, test in StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed).split(x, y, groups):
        fitted = model.fit(x[train], y[train])
        out_of_fold[test] = fitted.predict_proba(x[test])[:, 1]
        if 0 < y[test].sum() < len(test):
            aucs.append(roc_auc_score(y[test], out_of_fold[test]))
    scored = np.array([s.probability is not None for s in labelled])
    scored_auc = (roc_auc_score(y[scored], out_of_fold[scored])
                  if scored.any() and 0 < y[scored].sum() < scored.sum() else None)
    mean = float(np.mean(aucs))
    return {
        "by_month": _by_month(labelled, out_of_fold.tolist(), roc_auc_score),
        "folds": folds,
        "snapshots": len(labelled),
        "positives": positives,
        "usage_names": len(names),
        "auc_mean": mean,
        "auc_std": float(np.std(aucs, ddof=1)) if len(aucs) > 1 else math.nan,
        "pooled_auc": float(roc_auc_score(y, out_of_fold)),
        "pooled_auc_scored": None if scored_auc is None else float(scored_auc),
    }
