"""A small, hand-written customer base over 75 days, with known trouble.

Three steady customers keep the event clock moving; six others each show one
churn signal. It drives the replay test and the test that the worker and the
replay agree, where every expected alert is known by name.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from churnwatch.rules import RulesConfig
from churnwatch.schemas.alert import Alert
from churnwatch.schemas.events import Event, PaymentEvent, SubscriptionEvent, TicketEvent, UsageEvent
from churnwatch.offline.replay import replay_lines

START = datetime(2026, 1, 5, tzinfo=UTC)
DAYS = 75
MRR = {"steady-1": 300.0, "steady-2": 120.0, "steady-3": 900.0, "acme": 1200.0, "globex": 300.0,
       "initech": 49.0, "umbrella": 4800.0, "hooli": 2000.0, "stark": 5000.0}


def _at(day: float) -> datetime:
    return START + timedelta(days=day)


def story() -> list[Event]:
    """All events, sorted by event time."""
    events: list[Event] = []
    for customer, mrr in MRR.items():
        events.append(SubscriptionEvent(event_id=f"{customer}-start", customer_id=customer,
                                        occurred_at=_at(0), action="started", plan="pro", mrr=mrr))
    for day in range(DAYS):
        # acme goes silent after day 40: no login, no purchase.
        active = ["steady-1", "steady-2", "steady-3", "globex", "initech", "umbrella", "hooli", "stark"]
        if day <= 40:
            active.append("acme")
        for n, customer in enumerate(active):
            for kind in ("login", "purchase"):
                events.append(UsageEvent(event_id=f"{customer}-{kind}-{day}", customer_id=customer,
                                         occurred_at=_at(day + 0.3 + n / 100), kind=kind))
    events += [
        # globex: an expired card, then the customer updates it and the retry succeeds.
        PaymentEvent(event_id="globex-pay-1", customer_id="globex", occurred_at=_at(20.5),
                     status="failed", invoice_id="inv-g-1", amount=300.0, currency="EUR",
                     failure_reason="card_expired"),
        PaymentEvent(event_id="globex-pay-2", customer_id="globex", occurred_at=_at(24.5),
                     status="succeeded", invoice_id="inv-g-1", amount=300.0, currency="EUR"),
        # hooli: insufficient funds twice: the episode escalates.
        PaymentEvent(event_id="hooli-pay-1", customer_id="hooli", occurred_at=_at(60.5),
                     status="failed", invoice_id="inv-h-1", amount=2000.0, currency="EUR",
                     failure_reason="insufficient_funds"),
        PaymentEvent(event_id="hooli-pay-2", customer_id="hooli", occurred_at=_at(64.5),
                     status="failed", invoice_id="inv-h-1", amount=2000.0, currency="EUR",
                     failure_reason="insufficient_funds", attempt=2),
        # umbrella: downgrades from 4800 to 1500 a month.
        SubscriptionEvent(event_id="umbrella-downgrade", customer_id="umbrella", occurred_at=_at(50.5),
                          action="plan_changed", plan="team", mrr=1500.0, previous_mrr=4800.0),
        # stark: an urgent ticket asking to cancel.
        TicketEvent(event_id="stark-ticket-1", customer_id="stark", occurred_at=_at(65.5),
                    ticket_id="S-1", action="opened", priority="urgent",
                    category="cancellation_request", sentiment=-0.8),
    ]
    # initech: three bug tickets in a week, unhappy; they age out 14 days later.
    for n, day in enumerate((30.5, 33.5, 36.5)):
        events.append(TicketEvent(event_id=f"initech-ticket-{n}", customer_id="initech",
                                  occurred_at=_at(day), ticket_id=f"I-{n}", action="opened",
                                  category="bug", sentiment=-0.6))
    return sorted(events, key=lambda e: (e.occurred_at, e.event_id))


def expected_alerts(events: list[Event], rules: RulesConfig) -> list[Alert]:
    """What the same core says offline: the yardstick for the worker."""
    alerts: list[Alert] = []
    replay_lines((e.model_dump_json() for e in events), rules, alerts.append)
    return alerts


def episode_changes(alerts: list[Alert]) -> set[tuple[str, str]]:
    """(alert id, firing|resolved) pairs: what any run must agree on.

    Escalation steps may differ: the worker's sweep runs every few wall
    seconds, so in compressed time it may find a customer already critical
    where the replay, sweeping at exact due times, saw high first.
    """
    return {(a.alert_id, a.status.value) for a in alerts}
