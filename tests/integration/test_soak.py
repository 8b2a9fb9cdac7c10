"""The soak (``make soak``, a million events) in small: the same code, so it cannot rot between soaks."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.soak import SoakResult, problems, run_soak
from tests.support.brokers import Broker


@pytest.mark.integration
def test_a_short_soak_accounts_for_every_message(broker: Broker, tmp_path: Path) -> None:
    said: list[str] = []
    result = run_soak(broker.bootstrap_servers, tmp_path, events=3_000, customers=300,
                      worker_env=broker.worker_env, bad_every=100, say=said.append)
    assert result.planned == result.published == 3_030
    assert sum(result.expected_rejections.values()) == 30 and len(result.expected_rejections) >= 3
    assert problems(result, judge_memory=False) == [], (result, said[-3:])
    assert result.consumed == {"applied": 3_000}


def test_the_soak_reports_what_does_not_balance_and_memory_that_grows() -> None:
    balanced = SoakResult(planned=1_000, published=1_000, expected_rejections={"not_json": 10},
                          consumed={"applied": 990},
                          rejected={"not_json": 10}, dead_letters=10, exit_code=0,
                          memory=[(n, 100_000_000 + n * 5_000) for n in range(0, 1_001, 100)])
    assert problems(balanced, judge_memory=False) == []
    grown = problems(balanced, warmup=0.3, tolerance=0.01)
    assert len(grown) == 1 and grown[0].startswith("RSS grew"), grown
    assert problems(balanced, warmup=0.3, tolerance=0.10) == []
    lost = SoakResult(**{**balanced.__dict__, "consumed": {"applied": 985, "duplicate": 2}, "dead_letters": 9})
    assert len(problems(lost, judge_memory=False)) == 3
    cut_short = SoakResult(**{**balanced.__dict__, "planned": 2_000})
    assert problems(cut_short, judge_memory=False) == ["stopped after publishing 1,000 of 2,000 messages"]
