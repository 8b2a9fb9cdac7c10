"""The backtest's chart (PNG): what a budget buys, and how risk sorts customers.

Left: precision and recall of model_risk against the alerts sent, had the
weekly budget been each share (``run.budget_curve``), with the random
alert's precision for scale. Right: the churn rate of each tenth of the
labelled snapshots by the model's score, over the overall rate (lift by
decile): a model that sorts well climbs to the right.

Needs matplotlib (the ``eval`` extra).
"""

from __future__ import annotations

from pathlib import Path

from churnwatch.offline.backtest.run import Backtest, BudgetPoint


def draw(backtest: Backtest, curve: list[BudgetPoint], deciles: list[float], path: Path) -> Path | str:
    """The chart's path, or why there is none."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: pip install 'churnwatch[eval]'"
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    sent = [p.score.alerts for p in curve]
    left.plot(sent, [100 * (p.score.precision or 0) for p in curve], "o-", label="precision")
    left.plot(sent, [100 * (p.score.recall or 0) for p in curve], "s-", label="recall")
    left.axhline(100 * backtest.card.base_rate, color="grey", linestyle="--", label="random alert's precision")
    for p in curve:
        left.annotate(f"{p.share:.1%}", (p.score.alerts, 100 * (p.score.precision or 0)), fontsize=7,
                      textcoords="offset points", xytext=(3, 4))
    chosen = backtest.model_score()
    if chosen is not None:
        left.plot([chosen.alerts], [100 * (chosen.precision or 0)], "r*", markersize=12,
                  label="model_risk as run (with its gate)")
    left.set_xlabel("model_risk alerts sent (weekly budget share annotated)")
    left.set_ylabel("%")
    left.set_title("What a budget buys")
    left.grid(alpha=0.3)
    left.legend(fontsize=8)
    if deciles:
        right.bar(range(1, len(deciles) + 1), deciles, color="tab:purple")
        right.axhline(1.0, color="grey", linestyle="--")
    right.set_xlabel("tenth of snapshots by model score (1 = lowest risk)")
    right.set_ylabel("churn rate / overall churn rate")
    auc = backtest.model.get("roc_auc")
    right.set_title(f"Lift by risk decile (online ROC AUC {auc:.3f})" if isinstance(auc, float)
                    else "Lift by risk decile")
    right.grid(alpha=0.3, axis="y")
    figure.suptitle(f"churnwatch backtest: {backtest.name}")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
