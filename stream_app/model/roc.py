"""ROC AUC over a stream of (score, label), exact to a fine grid, in bounded memory.

Churn scores crowd near zero (a few percent), where a fixed grid of
thresholds on [0, 1] (River's ``ROCAUC(n_thresholds=...)``) cannot tell them
apart. Scores are binned on the logit scale instead (0.01 wide, from -15 to
15), and two Fenwick trees count positives and negatives per bin, so adding
or removing a pair costs O(log bins) and the AUC is kept up to date: the
number of (positive, negative) pairs ranked right, ties counting half.

With ``window`` set, only the last ``window`` pairs count: the gate judges
the model as it is now, not as it was months ago.
"""

from __future__ import annotations

import math
from collections import deque
from statistics import NormalDist

LOGIT_RANGE = 15.0
BIN_WIDTH = 0.01
BINS = int(2 * LOGIT_RANGE / BIN_WIDTH) + 1


def logit(probability: float) -> float:
    p = min(max(probability, 1e-12), 1 - 1e-12)
    return math.log(p / (1 - p))


def _bin(probability: float) -> int:
    return min(BINS - 1, max(0, int((logit(probability) + LOGIT_RANGE) / BIN_WIDTH)))


class _Fenwick:
    def __init__(self, size: int) -> None:
        self.tree = [0] * (size + 1)

    def add(self, index: int, amount: int) -> None:
        i = index + 1
        while i < len(self.tree):
            self.tree[i] += amount
            i += i & -i

    def below(self, index: int) -> int:
        """How many counted in bins < index."""
        total, i = 0, index
        while i > 0:
            total += self.tree[i]
            i -= i & -i
        return total


class StreamingAUC:
    def __init__(self, window: int | None = None) -> None:
        self.window = window
        self._counts = (_Fenwick(BINS), _Fenwick(BINS))  # negatives, positives
        self._at: tuple[dict[int, int], dict[int, int]] = ({}, {})
        self.negatives = 0
        self.positives = 0
        self._concordant2 = 0  # twice the right-ranked pairs (ties count 1 here, half in the AUC)
        self._recent: deque[tuple[int, int]] | None = deque() if window else None

    def add(self, probability: float, label: int) -> None:
        self._change(_bin(probability), label, +1)
        if self._recent is not None and self.window is not None:
            self._recent.append((_bin(probability), label))
            if len(self._recent) > self.window:
                old_bin, old_label = self._recent.popleft()
                self._change(old_bin, old_label, -1)

    def _change(self, index: int, label: int, sign: int) -> None:
        """Add (+1) or remove (-1) one pair; its ranked pairs are with the other class only."""
        negatives, positives = self._counts
        if label:
            # A positive outranks the negatives in lower bins and ties with those in its own.
            pairs = 2 * negatives.below(index) + self._at[0].get(index, 0)
        else:
            pairs = 2 * (self.positives - positives.below(index + 1)) + self._at[1].get(index, 0)
        self._concordant2 += sign * pairs
        self._count(index, label, sign)

    def _count(self, index: int, label: int, sign: int) -> None:
        self._counts[label].add(index, sign)
        at = self._at[label]
        at[index] = at.get(index, 0) + sign
        if label:
            self.positives += sign
        else:
            self.negatives += sign

    def get(self) -> float | None:
        """None until both classes are present: AUC is undefined, not 0 or 0.5."""
        if not self.positives or not self.negatives:
            return None
        return self._concordant2 / (2 * self.positives * self.negatives)


def auc_lower_bound(auc: float, positives: int, negatives: int, confidence: float) -> float:
    """A one-sided lower bound of the ROC AUC at ``confidence``, by Hanley and McNeil's standard error (0.5: the
    estimate itself).

    Why this one: the gate asks it at every refresh, over a window of
    thousands of labels, and Hanley-McNeil needs only the AUC and the two
    counts (DeLong needs every pair's placement, a bootstrap many resamples).
    It assumes roughly normal scores in each class; the bound is used only
    to keep a window with few churners from opening the gate by luck (with
    20 churners a random model's AUC crosses 0.6 often; its bound does not).
    """
    if positives <= 0 or negatives <= 0:
        return 0.0
    q1 = auc / (2 - auc)
    q2 = 2 * auc * auc / (1 + auc)
    variance = (auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)) / (
        positives * negatives)
    z = NormalDist().inv_cdf(confidence) if confidence > 0.5 else 0.0
    return max(0.0, auc - z * math.sqrt(max(variance, 0.0)))
