"""``churnwatch validate`` and ``churnwatch publish``: a file of events checked, and sent, as the worker takes them."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from churnwatch.cli import main
from churnwatch.dev.worker_process import settings_env
from churnwatch.kafka.reader import collect
from churnwatch.kafka.topics import ensure_topics
from tests.support.brokers import Broker
from tests.support.worker import make_settings

pytestmark = pytest.mark.integration

BASE = {"occurred_at": "2026-01-05T12:00:00Z"}
GOOD = [
    {**BASE, "type": "usage", "event_id": "u-1", "customer_id": "acme", "kind": "login"},
    {**BASE, "type": "payment", "event_id": "p-1", "customer_id": "acme", "status": "failed", "invoice_id": "i-1",
     "amount": 10.0, "currency": "EUR", "failure_reason": "card_expired"},
    {**BASE, "type": "usage", "event_id": "u-2", "customer_id": "globex", "kind": "purchase"},
]
BAD = [
    {**BASE, "type": "payment", "event_id": "p-2", "customer_id": "acme", "status": "failed", "invoice_id": "i-2",
     "amount": 10.0, "currency": "EUR"},
    {**BASE, "event_id": "x-1", "customer_id": "acme", "kind": "login"},
]


def _file(tmp_path: Path) -> Path:
    path = tmp_path / "events.jsonl"
    lines = [json.dumps(doc) for doc in GOOD[:2]] + ["", json.dumps(BAD[0]), "{not json", json.dumps(GOOD[2]),
                                                     json.dumps(BAD[1])]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_validate_counts_and_explains_each_rejected_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(_file(tmp_path))]) == 1
    out = capsys.readouterr().out
    assert out.startswith("3 events valid (1 payment, 2 usage)\n"
                          "3 lines rejected (1 invalid_schema, 1 not_json, 1 unknown_type):\n")
    assert "  line 4: invalid_schema: " in out and "failure_reason is required" in out
    assert "  line 5: not_json: " in out and "  line 7: unknown_type: " in out


def test_validate_refuses_a_line_over_the_workers_limit_and_shows_every_rejection_on_request(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CHURNWATCH_MAX_MESSAGE_BYTES", "2048")
    big = {**GOOD[0], "event_id": "u-big", "feature": "x" * 4000}  # schema-valid, but over the limit
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join([json.dumps(big), *["{not json"] * 25]) + "\n")
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert "  line 1: too_large: message of " in out and "at most 2,048 are read" in out
    assert "  ... and 6 more" in out  # 26 rejected, 20 shown
    assert main(["validate", "--all", str(path)]) == 1
    out = capsys.readouterr().out
    assert "  line 26: not_json" in out and "more" not in out


def test_validate_reads_standard_input_for_a_dash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", _file(tmp_path).open("r"))
    assert main(["validate", "-"]) == 1
    assert capsys.readouterr().out.startswith("3 events valid (1 payment, 2 usage)\n")


@pytest.mark.parametrize("command", [["validate"], ["replay", "--out", "alerts.jsonl"]])
def test_a_missing_file_or_a_directory_is_one_line_not_a_traceback(
        tmp_path: Path, command: list[str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    for name, says in (("missing.jsonl", "No such file or directory"), (".", "Is a directory")):
        assert main([*command, name]) == 2
        err = capsys.readouterr().err
        assert err == f"churnwatch: {name}: {says}\n"


def test_a_reader_that_goes_away_ends_validate_quietly(tmp_path: Path) -> None:
    """``churnwatch validate FILE | head -1``: no BrokenPipeError traceback."""
    path = tmp_path / "events.jsonl"
    path.write_text("{not json\n" * 5000)
    pipeline = subprocess.run(
        f"{shlex.quote(sys.executable)} -m churnwatch validate --all {shlex.quote(str(path))} | head -1",
        shell=True, capture_output=True, text=True, timeout=60)
    assert pipeline.stdout == "0 events valid\n"
    assert pipeline.stderr == ""


def test_publish_sends_the_valid_lines_keyed_to_their_topics(broker: Broker, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    settings = make_settings(broker, tmp_path / "data")
    for name, value in settings_env(settings).items():
        monkeypatch.setenv(name, value)
    assert main(["publish", str(_file(tmp_path))]) == 1  # some lines were rejected
    assert "3 events published to" in capsys.readouterr().out
    usage = asyncio.run(collect(settings.bootstrap_servers, settings.topic_usage, lambda rs: len(rs) >= 2, 30))
    payments = asyncio.run(collect(settings.bootstrap_servers, settings.topic_payments, lambda rs: len(rs) >= 1, 30))
    assert sorted((r.key, json.loads(r.value)["event_id"]) for r in usage) == [(b"acme", "u-1"), (b"globex", "u-2")]
    assert [(r.key, json.loads(r.value)["event_id"]) for r in payments] == [(b"acme", "p-1")]


def test_the_publishing_docs_python_sample_runs_as_written(broker: Broker, tmp_path: Path) -> None:
    """docs/publishing.md's sample, taken from the page and run as a script: the payment reaches its topic."""
    page = (Path(__file__).parents[2] / "docs" / "publishing.md").read_text()
    samples = [block.split("```", 1)[0] for block in page.split("```python\n")[1:]]
    assert len(samples) == 1, "one Python sample on the page"
    script = tmp_path / "publish_sample.py"
    script.write_text(samples[0])
    settings = make_settings(broker, tmp_path / "data")
    asyncio.run(ensure_topics(settings))  # as a running worker has: it creates its topics at start
    ran = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60,
                         env={**os.environ, **settings_env(settings)})
    assert ran.returncode == 0, ran.stderr
    got = asyncio.run(collect(settings.bootstrap_servers, settings.topic_payments, lambda rs: len(rs) >= 1, 30))
    assert [(r.key, json.loads(r.value)["event_id"]) for r in got] == [(b"acme", "pay-8812")]
