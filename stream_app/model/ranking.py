"""The week's ranking of assessed customers, for the model_risk alert budget, and how deep it may go.

Every customer is assessed once a week (at their snapshot), so the stakes of
the last ``days`` days are one per active customer: the population a budget
("the top 3% of customers a week") is a share of. A new stake is ranked
against them before it joins them.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Iterable
from statistics import NormalDist

from churnwatch.rules.clock_math import DAY
from churnwatch.rules.model_risk import Rank

MIN_POPULATION = 50  # fewer assessments than this rank nothing: a top 3% of 10 is no budget


class WeeklyRanking:
    def __init__(self, days: int) -> None:
        self.span = days * DAY
        self._arrivals: deque[tuple[int, float]] = deque()
        self._sorted: list[float] = []

    def __len__(self) -> int:
        return len(self._sorted)

    def _expire(self, now: int) -> None:
        while self._arrivals and self._arrivals[0][0] <= now - self.span:
            _, stake = self._arrivals.popleft()
            del self._sorted[bisect.bisect_left(self._sorted, stake)]

    def rank(self, stake: float, now: int) -> Rank | None:
        self._expire(now)
        population = len(self._sorted)
        if population < MIN_POPULATION:
            return None
        higher = population - bisect.bisect_right(self._sorted, stake)
        return Rank(higher / population, population)

    def record(self, at: int, stake: float) -> None:
        self._expire(at)
        self._arrivals.append((at, stake))
        bisect.insort(self._sorted, stake)


def wilson_lower(hits: int, n: int, confidence: float) -> float:
    """A one-sided lower bound of a proportion (Wilson's score interval): sound at a handful of hits."""
    if n == 0:
        return 0.0
    z = NormalDist().inv_cdf(confidence) if confidence > 0.5 else 0.0
    p = hits / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, (centre - spread) / (1 + z * z / n))


def deepest_share(scored: Iterable[tuple[float, int]], lift_floor: float, cap: float, min_hits: int,
                  confidence: float) -> float:
    """The largest top share of ``scored`` (stake, label), at most ``cap``, whose alerts taken together keep a
    precision whose lower bound at ``confidence`` is ``lift_floor`` times the base rate; 0.0 when none does.

    The precision of what is sent, not of the last customers added to it: it
    is what a support team sees of the rule (``GET /rules``). The stakes are
    the scores given at snapshot time, before the label was learned (as the
    gate's AUC is): out of time, never the model's fit to its own past.
    """
    ordered = sorted(scored, key=lambda pair: -pair[0])
    n = len(ordered)
    positives = sum(label for _, label in ordered)
    if not positives:
        return 0.0
    base = positives / n
    best = hits = 0
    for k, (_, label) in enumerate(ordered[:int(cap * n)], 1):
        hits += label
        if hits >= min_hits and wilson_lower(hits, k, confidence) >= lift_floor * base:
            best = k
    return best / n
