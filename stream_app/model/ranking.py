"""The week's ranking of assessed customers, for the model_risk alert budget.

Every customer is assessed once a week (at their snapshot), so the stakes of
the last ``days`` days are one per active customer: the population a budget
("the top 3% of customers a week") is a share of. A new stake is ranked
against them before it joins them.
"""

from __future__ import annotations

import bisect
from collections import deque

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
