"""The simulator: deterministic for a seed, every archetype present, truth consistent."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from churnwatch.schemas.intake import validate_event
from churnwatch.kafka.reader import collect
from churnwatch.dev.worker_process import settings_env
from tests.support.brokers import Broker
from tests.support.worker import make_settings
from churnwatch.cli import main
from churnwatch.offline.simulator import ARCHETYPES, DEFAULT_START, simulate, truth_path


def test_the_same_seed_gives_the_same_file(tmp_path: Path) -> None:
    for name in ("a", "b"):
        assert main(["simulate", "--customers", "40", "--days", "60", "--seed", "5",
                     "--out", str(tmp_path / f"{name}.jsonl")]) == 0
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert truth_path(tmp_path / "a.jsonl").read_bytes() == truth_path(tmp_path / "b.jsonl").read_bytes()
    assert main(["simulate", "--customers", "40", "--days", "60", "--seed", "6",
                 "--out", str(tmp_path / "c.jsonl")]) == 0
    assert (tmp_path / "c.jsonl").read_bytes() != (tmp_path / "a.jsonl").read_bytes()


def test_every_archetype_appears_and_the_truth_matches_the_events() -> None:
    events, truth = simulate(customers=len(ARCHETYPES), days=120, seed=3)
    assert {t.archetype for t in truth} == {a.name for a in ARCHETYPES}
    assert [e.occurred_at for e in events] == sorted(e.occurred_at for e in events)
    cancelled = {e.customer_id: e.occurred_at for e in events
                 if e.type == "subscription" and e.action == "cancelled"}
    for t in truth:
        assert t.churned == (t.customer_id in cancelled)
        if t.churned:
            assert t.churned_at == cancelled[t.customer_id]
            assert all(e.occurred_at <= t.churned_at for e in events if e.customer_id == t.customer_id)
    for event in events[:500]:
        assert validate_event(event.model_dump_json()) == event
    assert {e.type for e in events} == {"usage", "payment", "ticket", "subscription"}
    # The two moments the newest rules watch: a customer new in the data, and an annual contract.
    kinds = {t.customer_id: t.archetype for t in truth}
    starts = {e.customer_id: e for e in events if e.type == "subscription" and e.action == "started"}
    (new,) = [c for c, kind in kinds.items() if kind == "never_activates"]
    assert starts[new].occurred_at >= DEFAULT_START and starts[new].renews_at is not None
    (annual,) = [c for c, kind in kinds.items() if kind == "contract_thinning"]
    assert starts[annual].billing_period_months == 12
    assert (starts[annual].renews_at - starts[annual].occurred_at).days == 365


@pytest.mark.integration
def test_simulate_can_publish_straight_to_the_broker(broker: Broker, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    settings = make_settings(broker, tmp_path / "data")
    for key, value in settings_env(settings).items():
        monkeypatch.setenv(key, value)
    out = tmp_path / "s.jsonl"
    assert main(["simulate", "--customers", "10", "--days", "20", "--seed", "2", "--out", str(out),
                 "--broker", broker.bootstrap_servers, "--speed", "40"]) == 0
    lines = out.read_text().splitlines()
    by_topic = Counter(settings.topic_for(validate_event(line).type) for line in lines)

    async def count(topic: str, expected: int) -> int:
        records = await collect(broker.bootstrap_servers, topic, lambda rs: len(rs) >= expected, 30.0)
        return len(records)

    for topic, expected in by_topic.items():
        assert asyncio.run(count(topic, expected)) == expected
