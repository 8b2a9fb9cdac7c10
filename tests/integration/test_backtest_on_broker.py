"""The worker on a real broker and the backtest agree: the same export, the same non-model alerts.

A small warehouse export (its actions imported as purchases, so that
customers who go quiet trip the disengagement rule, and some downgrade) is
backtested offline, then published to a worker on the event clock. Every
episode the backtest opens or closes, the worker must too, with the same
alert id. model_risk is left out: the worker learns on its own schedule.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from churnwatch.rules import RulesConfig
from churnwatch.schemas.alert import Alert, RuleName
from churnwatch.offline.backtest.run import run_backtest
from churnwatch.offline.backtest.warehouse import Export, ExportLayout
from churnwatch.kafka.reader import collect
from tests.support.brokers import Broker
from tests.support.worker import publish_events, running_worker
from tests.support.story import episode_changes
from tests.support.warehouse import write_export

pytestmark = pytest.mark.integration

WAIT_S = 180.0


def _rules_alerts(alerts: list[Alert]) -> set[tuple[str, str]]:
    return episode_changes([a for a in alerts if a.rule != RuleName.MODEL_RISK])


def test_the_worker_sends_the_alerts_of_the_backtest(broker: Broker, tmp_path: Path) -> None:
    directory = write_export(tmp_path / "export", accounts=16, days=100, seed=5)
    source = Export(directory / "events.csv.gz", directory / "subscriptions.csv.gz",
                    ExportLayout(usage_kind="purchase"))
    events = list(source.events())
    backtest = run_backtest("fixture", events, source.truth, RulesConfig())
    expected = _rules_alerts(backtest.alerts)
    rules = {a.rule for a in backtest.alerts}
    assert {RuleName.DISENGAGEMENT, RuleName.REVENUE_CHURN} <= rules, rules  # the export exercises both
    with running_worker(broker, tmp_path) as (settings, worker):
        publish_events(settings, events)
        records = asyncio.run(collect(
            settings.bootstrap_servers, settings.topic_alerts,
            lambda rs: _rules_alerts([Alert.model_validate_json(r.value) for r in rs]) >= expected,
            WAIT_S, until=worker.dead))
        assert worker.alive(), worker.log_text()[-3000:]
    received = [Alert.model_validate_json(r.value) for r in records]
    sent = _rules_alerts(received)

    def described(changes: set[tuple[str, str]], alerts: list[Alert]) -> list[str]:
        return sorted(f"{a.customer_id} {a.rule.value} {a.status.value} {a.triggered_at:%Y-%m-%d %H:%M} {a.reasons[0]}"
                      for a in alerts if (a.alert_id, a.status.value) in changes)

    assert sent == expected, (f"only the worker: {described(sent - expected, received)}\n"
                              f"only the backtest: {described(expected - sent, backtest.alerts)}")
