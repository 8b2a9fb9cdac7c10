"""Settings validation, the schema export and the embedded broker's life cycle."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from churnwatch.cli import main
from churnwatch.dev.embedded_broker import EmbeddedBroker, free_port, kafka_answers
from churnwatch.settings import Settings
from churnwatch.dev.worker_process import settings_env


def test_settings_come_from_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURNWATCH_BOOTSTRAP_SERVERS", "k1:9092, k2:9093")
    monkeypatch.setenv("CHURNWATCH_PARTITIONS", "8")
    monkeypatch.setenv("CHURNWATCH_TOPIC_ALERTS", "cs-alerts")
    monkeypatch.setenv("BROKER_URL", "kafka://ignored:1")  # Faust's own, not ours
    settings = Settings.from_env()
    assert settings.bootstrap_servers == "k1:9092,k2:9093"
    assert settings.faust_broker_url == "kafka://k1:9092;kafka://k2:9093"
    assert settings.partitions == 8
    assert settings.topic_alerts == "cs-alerts"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CHURNWATCH_BOOTSTRAP_SERVERS", "no-port"),
        ("CHURNWATCH_PARTITIONS", "0"),
        ("CHURNWATCH_TOPIC_USAGE", "bad topic name"),
        ("CHURNWATCH_WEB_PORT", "70000"),
        ("CHURNWATCH_NO_SUCH_SETTING", "1"),
    ],
)
def test_bad_settings_are_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=name):
        Settings.from_env()


def test_the_cli_reports_bad_settings_in_one_line(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CHURNWATCH_PARTITIONS", "many")
    assert main(["worker"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "CHURNWATCH_PARTITIONS='many': Input should be a valid integer" in err


def test_a_misspelt_setting_gets_a_suggestion_and_no_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURNWATCH_PARTITONS", "3")
    with pytest.raises(ValueError) as refused:
        Settings.from_env()
    assert "unknown setting CHURNWATCH_PARTITONS: did you mean CHURNWATCH_PARTITIONS?" in str(refused.value)
    assert "CHURNWATCH_WEB_PORT" not in str(refused.value)


def test_a_secret_is_never_shown_in_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURNWATCH_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("CHURNWATCH_KAFKA_SASL_USERNAME", "svc")
    monkeypatch.setenv("CHURNWATCH_KAFKA_SASL_PASSWORD", "hunter2-secret")
    monkeypatch.setenv("CHURNWATCH_WEB_PORT", "0")
    with pytest.raises(ValueError) as refused:
        Settings.from_env()
    assert "CHURNWATCH_WEB_PORT='0'" in str(refused.value) and "hunter2" not in str(refused.value)


def test_settings_env_reproduces_the_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings = Settings(app_id="x", partitions=3, data_dir=tmp_path, topic_alerts="a-1")
    for key, value in settings_env(settings).items():
        monkeypatch.setenv(key, value)
    assert Settings() == settings


def test_schemas_export_writes_one_file_per_contract(tmp_path: Path) -> None:
    assert main(["schemas", "export", str(tmp_path)]) == 0
    usage = json.loads((tmp_path / "usage_event.v2.schema.json").read_text())
    assert usage["additionalProperties"] is False
    assert {"type", "event_id", "customer_id", "occurred_at", "kind"} <= set(usage["required"])
    union = json.loads((tmp_path / "event.v2.schema.json").read_text())
    assert union["discriminator"]["propertyName"] == "type"


def test_embedded_broker_answers_and_its_process_ends() -> None:
    broker = EmbeddedBroker()
    with broker:
        pid = broker.pid
        assert pid is not None
        assert kafka_answers(broker.host, broker.port)
    assert not kafka_answers(broker.host, broker.port)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_broker_command_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "churnwatch", "broker", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not kafka_answers("127.0.0.1", port) and time.monotonic() < deadline:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            time.sleep(0.1)
        assert kafka_answers("127.0.0.1", port)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        assert not kafka_answers("127.0.0.1", port)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
