"""Alert priority: severity weighted by the revenue at stake.

Support teams sort by one number. A critical alert on a free account should
still beat a warning on a large one, so severity sets the band and MRR moves
the alert within (and a little beyond) it, on a log scale so that one huge
account does not flatten everyone else.
"""

from __future__ import annotations

import math

from churnwatch.schemas.alert import Severity

SEVERITY_BASE: dict[Severity, int] = {
    Severity.INFO: 10,
    Severity.WARNING: 30,
    Severity.HIGH: 55,
    Severity.CRITICAL: 75,
}

# MRR at which the revenue bonus reaches its maximum (25 points).
MRR_FOR_FULL_BONUS = 10_000.0
MAX_REVENUE_BONUS = 25


def priority(severity: Severity, mrr: float) -> int:
    """0..100: the severity's base plus up to 25 points for MRR (log-scaled)."""
    if mrr <= 0:
        bonus = 0.0
    else:
        bonus = MAX_REVENUE_BONUS * min(1.0, math.log1p(mrr) / math.log1p(MRR_FOR_FULL_BONUS))
    return min(100, SEVERITY_BASE[severity] + round(bonus))
