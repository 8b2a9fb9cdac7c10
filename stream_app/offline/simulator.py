"""A simulated customer base with known outcomes, for the demo, tests and backtests.

Each customer follows an archetype: how active they are, how that changes,
and whether and how they leave. Everything is drawn from one seeded random
generator, so the same seed gives the same file. The truth (who churned,
when, and why) is written beside the events, so alerts and the model can be
scored against it.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from churnwatch.schemas.events import Event, PaymentEvent, SubscriptionEvent, TicketEvent, UsageEvent

DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Archetype:
    name: str
    weight: float  # share of the population
    churns: float  # probability that a customer of this kind leaves
    activity: float  # relative level of usage (1.0 = typical)


ARCHETYPES: tuple[Archetype, ...] = (
    Archetype("steady", 0.32, churns=0.0, activity=1.0),
    Archetype("slowly_disengaging", 0.10, churns=1.0, activity=1.0),
    Archetype("abruptly_silent", 0.08, churns=1.0, activity=1.0),
    Archetype("card_expiring", 0.08, churns=1.0, activity=0.9),
    Archetype("unhappy", 0.08, churns=1.0, activity=0.8),
    # Half of those who downgrade leave a few weeks later.
    Archetype("downgrading", 0.08, churns=0.5, activity=0.8),
    Archetype("low_level_churner", 0.18, churns=1.0, activity=0.35),
    # New in the simulated period, barely active, gone at the first renewal.
    Archetype("never_activates", 0.04, churns=0.9, activity=0.08),
    # On an annual contract; usage thins in the months before the renewal, and most do not renew.
    Archetype("contract_thinning", 0.04, churns=0.75, activity=1.0),
)
ANNUAL_DAYS = 365
MONTH_DAYS = 30


@dataclass(frozen=True)
class Truth:
    """What became of a customer: the scorecard's ground truth.

    ``since`` is when they became a customer (None: before the data began);
    the base rate counts a customer as active only from then.
    """

    customer_id: str
    archetype: str
    churned: bool
    churned_at: datetime | None
    since: datetime | None = None

    def to_json(self) -> str:
        return json.dumps({
            "customer_id": self.customer_id, "archetype": self.archetype, "churned": self.churned,
            "churned_at": self.churned_at.isoformat() if self.churned_at else None,
            "since": self.since.isoformat() if self.since else None,
        })


class _Customer:
    """Generates one customer's events, day by day, from its archetype."""

    def __init__(self, n: int, archetype: Archetype, days: int, rng: random.Random, start: datetime):
        self.id = f"cust-{n:06d}"
        self.archetype = archetype
        self.rng = rng
        self.start = start
        self.days = days
        self.seq = 0
        self.mrr = rng.choice((29.0, 49.0, 99.0, 199.0, 499.0, 1500.0))
        # Most of the base signed up before the simulated period: tenure must
        # not be a stand-in for "how far into the simulation we are".
        self.joined = rng.uniform(-400, 0) if rng.random() < 0.85 else rng.uniform(0, days * 0.2)
        # When trouble starts and when the customer leaves (if they do).
        self.trouble = rng.uniform(days * 0.25, days * 0.6)
        self.term_days = MONTH_DAYS
        if archetype.name == "never_activates":
            self.joined = rng.uniform(0, days * 0.6)
        elif archetype.name == "contract_thinning":
            renewal = rng.uniform(days * 0.45, days * 0.95)
            self.term_days, self.joined, self.trouble = ANNUAL_DAYS, renewal - ANNUAL_DAYS, renewal - 75
        self.churn_day: float | None = None
        if rng.random() < archetype.churns:
            delay = {"slowly_disengaging": 45, "abruptly_silent": 25, "card_expiring": 21,
                     "unhappy": 14, "downgrading": 21, "low_level_churner": 0}.get(archetype.name, 0)
            if archetype.name == "low_level_churner":
                self.churn_day = rng.uniform(days * 0.3, days * 0.95)
            elif archetype.name in ("never_activates", "contract_thinning"):
                self.churn_day = self.joined + self.term_days  # at the first renewal
            else:
                self.churn_day = self.trouble + delay * rng.uniform(0.8, 1.2)
            if self.churn_day >= days:
                self.churn_day = None  # leaves after the simulated period: not churned here
        self.cancel_reason = "involuntary" if archetype.name == "card_expiring" else "voluntary"

    def _id(self, kind: str) -> str:
        self.seq += 1
        return f"{self.id}-{kind}-{self.seq}"

    def _at(self, day: float) -> datetime:
        return self.start + timedelta(days=day)

    def level(self, day: float) -> float:
        """Expected activity on a day, relative to a typical customer."""
        base = self.archetype.activity
        name = self.archetype.name
        if name == "slowly_disengaging" and day > self.trouble:
            return base * max(0.05, 1 - (day - self.trouble) / 40)
        if name == "abruptly_silent" and day > self.trouble:
            return 0.0
        if name == "downgrading" and day > self.trouble:
            return base * 0.7
        if name == "contract_thinning" and day > self.trouble:
            return base * max(0.1, 1 - (day - self.trouble) / 50)
        return base

    def events(self) -> Iterator[Event]:
        """Everything this customer does, none of it after they leave."""
        leaves = self._at(self.churn_day if self.churn_day is not None else self.days)
        yield from (e for e in self._events() if e.occurred_at <= leaves)

    def _events(self) -> Iterator[Event]:
        rng = self.rng
        end = self.churn_day if self.churn_day is not None else self.days
        yield self._subscription("sub", self.joined, "started")
        day = max(0, math.ceil(self.joined))
        while day < end:
            level = self.level(day)
            logins = _poisson(rng, 0.9 * level)
            for _ in range(min(logins, 3)):
                yield UsageEvent(event_id=self._id("login"), customer_id=self.id,
                                 occurred_at=self._at(day + rng.uniform(0.3, 0.9)), kind="login")
            for kind, rate in (("purchase", 0.5), ("feature_use", 1.2), ("session", 0.8)):
                quantity = _poisson(rng, rate * level)
                if quantity:
                    yield UsageEvent(event_id=self._id(kind), customer_id=self.id,
                                     occurred_at=self._at(day + rng.uniform(0.3, 0.9)), kind=kind,
                                     quantity=quantity)
            yield from self._monthly(day)
            yield from self._trouble(day)
            day += 1
        if self.churn_day is not None:
            yield SubscriptionEvent(event_id=self._id("cancel"), customer_id=self.id,
                                    occurred_at=self._at(self.churn_day), action="cancelled", plan="pro",
                                    mrr=0.0, previous_mrr=self.mrr, cancel_reason=self.cancel_reason)

    def _subscription(self, kind: str, day: float, action: str) -> SubscriptionEvent:
        """A start or renewal, with its next renewal date (and, for the annual contract, its billing period).

        A renewal date before the simulated period is left out: usage is simulated from the period's first
        day only, so a renewal then would look like one of a customer with no usage at all.
        """
        annual = self.term_days == ANNUAL_DAYS
        renews = day + self.term_days
        return SubscriptionEvent(event_id=self._id(kind), customer_id=self.id, occurred_at=self._at(day),
                                 action=action, plan="annual" if annual else "pro", mrr=self.mrr,
                                 renews_at=self._at(renews) if renews > 0 else None,
                                 billing_period_months=12 if annual else 1, schema_version=2)

    def _monthly(self, day: int) -> Iterator[Event]:
        """Renewal and its payment every term (30 days, or a year for the annual contract) after joining."""
        if day <= self.joined or (day - math.floor(self.joined)) % self.term_days:
            return
        if self.churn_day is not None and abs(self.churn_day - day) < 1:
            return  # they leave at this renewal instead
        at = self._at(day + 0.1)
        card_dead = self.archetype.name == "card_expiring" and day > self.trouble
        if card_dead:
            yield PaymentEvent(event_id=self._id("pay"), customer_id=self.id, occurred_at=at, status="failed",
                               invoice_id=f"{self.id}-inv-{day}", amount=self.mrr, currency="EUR",
                               failure_reason="card_expired")
            return
        yield PaymentEvent(event_id=self._id("pay"), customer_id=self.id, occurred_at=at, status="succeeded",
                           invoice_id=f"{self.id}-inv-{day}", amount=self.mrr, currency="EUR")
        yield self._subscription("renew", day + 0.1, "renewed")

    def _trouble(self, day: int) -> Iterator[Event]:
        rng = self.rng
        name = self.archetype.name
        if name == "card_expiring" and self.trouble < day <= self.trouble + 1:
            # The first failure comes right away; retries follow weekly.
            for retry in range(3):
                yield PaymentEvent(event_id=self._id("pay"), customer_id=self.id,
                                   occurred_at=self._at(day + 0.2 + 7 * retry), status="failed",
                                   invoice_id=f"{self.id}-inv-exp", amount=self.mrr, currency="EUR",
                                   failure_reason="card_expired", attempt=retry + 1)
        if name == "unhappy" and day > self.trouble and rng.random() < 0.35:
            category = "cancellation_request" if rng.random() < 0.1 else rng.choice(("bug", "billing", "other"))
            yield TicketEvent(event_id=self._id("ticket"), customer_id=self.id,
                              occurred_at=self._at(day + 0.5), ticket_id=self._id("t"), action="opened",
                              priority="urgent" if rng.random() < 0.2 else "high", category=category,
                              sentiment=round(rng.uniform(-1, -0.3), 2))
        elif rng.random() < 0.01:  # everyone has the odd question
            yield TicketEvent(event_id=self._id("ticket"), customer_id=self.id,
                              occurred_at=self._at(day + 0.5), ticket_id=self._id("t"), action="opened",
                              category="how_to", sentiment=round(rng.uniform(-0.2, 0.8), 2))
        if name == "downgrading" and self.trouble < day <= self.trouble + 1:
            before, self.mrr = self.mrr, round(self.mrr * rng.uniform(0.3, 0.6), 2)
            yield SubscriptionEvent(event_id=self._id("downgrade"), customer_id=self.id,
                                    occurred_at=self._at(day + 0.4), action="plan_changed", plan="basic",
                                    mrr=self.mrr, previous_mrr=before)


def _poisson(rng: random.Random, rate: float) -> int:
    if rate <= 0:
        return 0
    limit, k, p = math.exp(-rate), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def simulate(customers: int, days: int, seed: int, start: datetime = DEFAULT_START) -> tuple[list[Event], list[Truth]]:
    """The population's events sorted by time, and the truth about each customer."""
    rng = random.Random(seed)
    weights = [a.weight for a in ARCHETYPES]
    events: list[Event] = []
    truth: list[Truth] = []
    for n in range(customers):
        # The first customers cover every archetype, whatever the population size.
        archetype = ARCHETYPES[n] if n < len(ARCHETYPES) else rng.choices(ARCHETYPES, weights)[0]
        customer = _Customer(n, archetype, days, random.Random(rng.getrandbits(64)), start)
        events.extend(customer.events())
        churned_at = customer._at(customer.churn_day) if customer.churn_day is not None else None
        since = customer._at(customer.joined) if customer.joined > 0 else None
        truth.append(Truth(customer.id, archetype.name, churned_at is not None, churned_at, since))
    events.sort(key=lambda e: (e.occurred_at, e.event_id))
    return events, truth


def truth_path(events_path: Path) -> Path:
    """``FILE.jsonl`` -> ``FILE.truth.jsonl``."""
    name = events_path.name.removesuffix(".jsonl")
    return events_path.with_name(f"{name}.truth.jsonl")


def read_truth(path: Path) -> list[Truth]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            doc = json.loads(line)
            churned_at = datetime.fromisoformat(doc["churned_at"]) if doc.get("churned_at") else None
            since = datetime.fromisoformat(doc["since"]) if doc.get("since") else None
            out.append(Truth(doc["customer_id"], doc.get("archetype", ""), bool(doc["churned"]), churned_at, since))
    return out


def write_simulation(path: Path, events: list[Event], truth: list[Truth]) -> Path:
    with path.open("w", encoding="utf-8") as out:
        for event in events:
            out.write(event.model_dump_json(exclude_none=True) + "\n")
    truth_file = truth_path(path)
    truth_file.write_text("".join(t.to_json() + "\n" for t in truth), encoding="utf-8")
    return truth_file
