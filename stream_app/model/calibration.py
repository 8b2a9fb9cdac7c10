"""Platt scaling: turn the model's raw scores into probabilities that mean what they say.

The learner weights rare positives up, and the base rate of churn drifts
(a young base churns more than an old one), so its raw scores are not
probabilities. A logistic curve ``p = sigmoid(a * logit(raw) + b)`` is
fitted to recent (raw score, label) pairs that the model scored *before*
learning them (out of sample), by a few Newton steps on the log loss, pulled
towards ``a = 1, b = 0`` (no change) with the weight of ``prior`` pairs.

The pull matters: the recent pairs are a horizon old, and the churn rate
drifts, so a curve fitted to them alone chases a rate that has moved on.
Measured on the shared socialnet7 base (docs/model.md), a pull
worth half the gate window kept the online ROC AUC of the raw scores and
brought the log loss below the constant predictor's; no pull lost both.
``a`` never goes below zero: calibration may flatten the ranking, never
reverse it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from churnwatch.model.roc import logit

STEPS = 25


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


class Platt:
    def __init__(self, prior: float) -> None:
        self.prior = prior  # the pull towards the identity, in pairs' worth of log loss
        self.a = 1.0
        self.b = 0.0

    def __call__(self, raw: float) -> float:
        return _sigmoid(self.a * logit(raw) + self.b)

    def fit(self, pairs: Sequence[tuple[float, int]]) -> None:
        """Fit to (logit of the raw score, label) pairs; keeps the old curve if there are none."""
        if not pairs:
            return
        a, b = self.a, self.b
        for _ in range(STEPS):
            # Gradient and Hessian of the summed log loss plus the prior.
            ga = self.prior * (a - 1.0)
            gb = self.prior * b
            haa = hbb = self.prior
            hab = 0.0
            for x, y in pairs:
                p = _sigmoid(a * x + b)
                r = p - y
                w = p * (1.0 - p)
                ga += r * x
                gb += r
                haa += w * x * x
                hab += w * x
                hbb += w
            det = haa * hbb - hab * hab
            if det <= 1e-12:
                break
            da = (hbb * ga - hab * gb) / det
            db = (haa * gb - hab * ga) / det
            a, b = max(0.0, a - da), b - db
            if abs(da) < 1e-7 and abs(db) < 1e-7:
                break
        self.a, self.b = a, b
