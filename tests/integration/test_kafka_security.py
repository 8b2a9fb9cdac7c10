"""Kafka security settings reach Faust and the plain clients; the password is never shown."""

from __future__ import annotations

import ssl
import time
from pathlib import Path

import faust
import pytest

from churnwatch.kafka.security import aiokafka_options, faust_credentials
from churnwatch.settings import Settings
from churnwatch.dev.worker_process import WorkerProcess, settings_env
from tests.support.brokers import Broker
from tests.support.worker import make_settings

SECRET = "s3cret-do-not-print-7f1c"


def _sasl(**overrides: object) -> Settings:
    fields: dict[str, object] = {"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_mechanism": "SCRAM-SHA-256",
                                 "kafka_sasl_username": "churnwatch", "kafka_sasl_password": SECRET}
    return Settings(**{**fields, **overrides})


def test_plaintext_is_the_default() -> None:
    assert aiokafka_options(Settings()) == {"security_protocol": "PLAINTEXT"}
    assert faust_credentials(Settings()) is None


def test_sasl_scram_reaches_both_libraries() -> None:
    settings = _sasl()
    options = aiokafka_options(settings)
    assert options == {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-256",
                       "sasl_plain_username": "churnwatch", "sasl_plain_password": SECRET}
    credentials = faust_credentials(settings)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol.value == "SASL_PLAINTEXT" and credentials.mechanism.value == "SCRAM-SHA-256"
    assert credentials.username == "churnwatch" and credentials.password == SECRET


def test_sasl_over_tls_and_plain_tls_carry_a_tls_context() -> None:
    options = aiokafka_options(_sasl(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="PLAIN"))
    assert options["security_protocol"] == "SASL_SSL" and isinstance(options["ssl_context"], ssl.SSLContext)
    credentials = faust_credentials(_sasl(kafka_security_protocol="SASL_SSL"))
    assert credentials is not None and credentials.protocol.value == "SASL_SSL"
    tls = faust_credentials(Settings(kafka_security_protocol="SSL"))
    assert isinstance(tls, faust.SSLCredentials)
    assert aiokafka_options(Settings(kafka_security_protocol="SSL"))["security_protocol"] == "SSL"


def test_incomplete_security_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"):
        Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="u")
    with pytest.raises(ValueError, match="go together"):
        Settings(kafka_security_protocol="SSL", kafka_ssl_certfile=Path("client.pem"))
    with pytest.raises(ValueError):
        Settings(kafka_sasl_mechanism="GSSAPI")


def test_the_password_is_never_shown_but_reaches_a_child_process() -> None:
    settings = _sasl()
    for text in (repr(settings), str(settings), settings.model_dump_json()):
        assert SECRET not in text
    assert settings_env(settings)["CHURNWATCH_KAFKA_SASL_PASSWORD"] == SECRET


@pytest.mark.integration
def test_a_worker_that_cannot_authenticate_stops_without_logging_the_password(broker: Broker, tmp_path: Path) -> None:
    """The embedded broker speaks no SASL, so the connection fails: where a secret would leak."""
    settings = make_settings(broker, tmp_path / "data", kafka_security_protocol="SASL_PLAINTEXT",
                             kafka_sasl_mechanism="PLAIN", kafka_sasl_username="churnwatch",
                             kafka_sasl_password=SECRET, log_level="debug")
    worker = WorkerProcess(settings, tmp_path / "worker.log", broker.worker_env).start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not worker.dead():
            time.sleep(0.2)
        assert worker.dead(), "the worker went on without authenticating"
    finally:
        code = worker.stop()
    text = worker.log_text()
    assert code != 0 and "KafkaConnectionError" in text, text[-2000:]
    assert SECRET not in text
