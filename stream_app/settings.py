"""The one settings object of the worker, read from ``CHURNWATCH_*`` variables.

Faust itself reads unprefixed variables such as ``BROKER_URL`` and
``WEB_PORT``; ours all carry the prefix so they never collide with Faust's.
"""

from __future__ import annotations

import difflib
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from churnwatch.schemas.events import EVENT_KIND, EVENT_KINDS

ENV_PREFIX = "CHURNWATCH_"

Port = Annotated[int, Field(ge=1, le=65535)]
TopicName = Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,249}$")]


class SettingsError(ValueError):
    pass


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid")

    bootstrap_servers: str = Field(
        default="127.0.0.1:9092", description="Kafka bootstrap servers, comma-separated host:port."
    )
    app_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,200}$")] = Field(
        default="churnwatch", description="Faust app id: consumer group and changelog prefix."
    )
    partitions: Annotated[int, Field(ge=1, le=1024)] = Field(
        default=4, description="Partitions of every input topic and of the state table."
    )
    replication_factor: Annotated[int, Field(ge=1, le=16)] = 1

    # One field per event type of churnwatch.schemas.events.EVENT_KINDS, named by its ``setting``.
    topic_usage: TopicName = EVENT_KIND["usage"].topic
    topic_payments: TopicName = EVENT_KIND["payment"].topic
    topic_tickets: TopicName = EVENT_KIND["ticket"].topic
    topic_subscriptions: TopicName = EVENT_KIND["subscription"].topic
    topic_erasures: TopicName = EVENT_KIND["erasure"].topic
    topic_alerts: TopicName = "churn-alerts"
    topic_dead_letters: TopicName = "churn-dead-letters"
    topic_sweep_ticks: TopicName = Field(
        default="churn-sweep-ticks",
        description="Internal: sweep commands, co-partitioned with the inputs and the state table.",
    )
    topic_labels: TopicName = Field(
        default="churn-labels",
        description="Labelled snapshots, one partition: every worker learns from all of them, in its order.",
    )
    labels_retention_days: Annotated[int, Field(ge=1, le=36_500)] = Field(
        default=400,
        description="How long the labels topic keeps labels: a worker with no checkpoint learns from these.",
    )

    # Connection security, passed to Faust and to every Kafka client we make.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = Field(default=None, description="Never logged or shown.")
    kafka_ssl_cafile: Path | None = Field(default=None, description="CA bundle; default: the system's.")
    kafka_ssl_certfile: Path | None = Field(default=None, description="Client certificate (mutual TLS).")
    kafka_ssl_keyfile: Path | None = Field(default=None, description="Client key (mutual TLS).")

    rules_file: Path | None = Field(
        default=None, description="Rules file (TOML); default: rules/default_rules.toml."
    )
    clock: Literal["wall", "event"] = Field(
        default="wall",
        description="wall: rules age customers by real time; event: by the newest event time seen.",
    )
    model_path: Path | None = Field(
        default=None,
        description="Model checkpoint file, one per worker; default: DATA_DIR/churn-model-HOST-PORT.pkl.",
    )
    model_start: Path | None = Field(
        default=None,
        description="A model to start from when the worker has no checkpoint of its own: the file "
                    "`churnwatch backtest --save-model` writes. Give every worker of the group the same file.",
    )
    model_checkpoint_s: Annotated[float, Field(gt=0, le=86_400)] = Field(
        default=60.0, description="How often the model is checkpointed (and at shutdown)."
    )
    watermark_idle_s: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=2.0,
        description="Event clock: a caught-up partition quiet this long stops holding the sweep's time back.",
    )
    merge_hold: Annotated[int, Field(ge=10)] = Field(
        default=2_000,
        description="Input messages waiting in the merge, per partition, above which the partition is fetched no "
                    "more until they are half gone.",
    )
    sweep_interval_s: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=5.0, description="How often each worker looks for customers whose rules are due."
    )
    sweep_batch: Annotated[int, Field(ge=1)] = Field(
        default=10_000, description="Most customers one sweep sends for evaluation."
    )

    max_message_bytes: Annotated[int, Field(ge=1024, le=10_000_000)] = Field(
        default=262_144, description="Input messages larger than this go to dead letters unread (too_large)."
    )
    batch_max: Annotated[int, Field(ge=1, le=100_000)] = Field(
        default=5000, description="Messages processed before changed states are written (and the messages acked)."
    )
    batch_wait_s: Annotated[float, Field(gt=0, le=10)] = Field(
        default=1.0, description="Longest time changed states wait to be written (alerts never wait)."
    )
    state_cache_size: Annotated[int, Field(ge=0)] = Field(
        default=2_000,
        description="Decoded states kept for the most recently active customers (about 40 kB each; 0: none).",
    )

    store: Literal["memory://", "rocksdb://"] = Field(
        default="memory://",
        description="Where a worker keeps customer states: memory:// (a start reads the whole state changelog "
                    "back) or rocksdb:// (on disk under DATA_DIR: a restart reads only what changed since). "
                    "The changelog topic is the durable copy either way.",
    )
    standby_replicas: Annotated[int, Field(ge=0, le=3)] | None = Field(
        default=None,
        description="Standby copies of other workers' table partitions; default: 0 on memory:// (a takeover "
                    "reads the changelog from the start anyway), 1 on rocksdb:// (it resumes from its copy).",
    )
    data_dir: Path = Field(default=Path(".churnwatch"), description="Faust data directory.")
    web_host: str = Field(default="127.0.0.1", description="Address the HTTP server binds to.")
    web_port: Port = 6066
    http_max_line_bytes: Annotated[int, Field(ge=256, le=65_536)] = Field(
        default=8190, description="Longest HTTP request line or header line; longer ones get 400, unread."
    )
    http_max_headers: Annotated[int, Field(ge=8, le=1024)] = Field(
        default=64, description="Most headers an HTTP request may carry."
    )
    http_max_body_bytes: Annotated[int, Field(ge=0, le=10_000_000)] = Field(
        default=65_536, description="Largest HTTP request body (no endpoint reads one); larger ones get 413."
    )
    advertised_host: str | None = Field(
        default=None,
        description="Host other workers reach this one at (customer lookups are forwarded there); "
        "default: WEB_HOST, or the machine's hostname when WEB_HOST binds all addresses.",
    )

    # Consumer-group timing. Faust's defaults suit a real cluster; the embedded
    # broker needs short sessions (see churnwatch.dev.embedded_broker.WORKER_TUNING).
    session_timeout_s: Annotated[float, Field(gt=0, le=300)] = 60.0
    heartbeat_interval_s: Annotated[float, Field(gt=0, le=60)] = 3.0
    rebalance_timeout_s: Annotated[float, Field(gt=0, le=600)] = 60.0
    producer_max_batch_size: Annotated[int, Field(ge=1)] = Field(
        default=16384, description="Producer batch size in bytes; 1 sends one record per batch."
    )
    consumer_max_fetch_bytes: Annotated[int, Field(ge=65_536)] = Field(
        default=16 * 1024 * 1024,
        description="Largest fetch per partition. A restart reads the whole state changelog back at this pace: "
                    "with Faust's 1 MiB a worker restored half as fast.",
    )
    consumer_fetch_wait_ms: Annotated[int, Field(ge=1, le=10_000)] = Field(
        default=100,
        description="Longest a fetch of the input topics waits at the broker for records (Faust's is 1,500). The "
                    "merge lets an event go on once the other partitions of its group were fetched after it came, "
                    "so a quiet partition's fetch wait is part of an alert's latency.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = Field(
        default="text", description="text: for a person (coloured on a terminal); json: one JSON object a line.")

    @field_validator("bootstrap_servers")
    @classmethod
    def _host_ports(cls, value: str) -> str:
        servers = [s.strip() for s in value.split(",") if s.strip()]
        if not servers:
            raise ValueError("at least one host:port is required")
        for server in servers:
            host, sep, port = server.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"{server!r} is not host:port")
        return ",".join(servers)

    @model_validator(mode="after")
    def _security_is_complete(self) -> Settings:
        if self.kafka_security_protocol.startswith("SASL") and not (
            self.kafka_sasl_username and self.kafka_sasl_password and self.kafka_sasl_password.get_secret_value()
        ):
            raise ValueError(f"{self.kafka_security_protocol} needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD")
        if (self.kafka_ssl_certfile is None) != (self.kafka_ssl_keyfile is None):
            raise ValueError("KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE go together")
        return self

    @property
    def input_topics(self) -> tuple[str, ...]:
        """The topic of every event type, in the order of ``EVENT_KINDS``."""
        return tuple(str(getattr(self, kind.setting)) for kind in EVENT_KINDS)

    def topic_for(self, event_type: str) -> str:
        """Where events of this type are published (and read from)."""
        return str(getattr(self, EVENT_KIND[event_type].setting))

    @property
    def canonical_host(self) -> str:
        if self.advertised_host:
            return self.advertised_host
        return socket.gethostname() if self.web_host in ("0.0.0.0", "::", "") else self.web_host

    @property
    def model_file(self) -> Path:
        """Named by the worker: replicas sharing a data volume never share a checkpoint."""
        return self.model_path or self.data_dir / f"churn-model-{self.canonical_host}-{self.web_port}.pkl"

    @property
    def scoreboard_file(self) -> Path:
        """The group's alert outcomes as this worker has counted them (churnwatch.scoreboard), named like the model."""
        return self.model_file.with_name(f"rule-outcomes-{self.canonical_host}-{self.web_port}.json")

    @property
    def open_alerts_file(self) -> Path:
        """The group's open alerts as this worker has read them (churnwatch.open_alerts), named like the model."""
        return self.model_file.with_name(f"open-alerts-{self.canonical_host}-{self.web_port}.json")

    @property
    def co_partitioned_topics(self) -> tuple[str, ...]:
        """Topics whose partition p must hold the same customers as the table's partition p."""
        return (*self.input_topics, self.topic_sweep_ticks)

    @property
    def faust_broker_url(self) -> str:
        return ";".join(f"kafka://{s}" for s in self.bootstrap_servers.split(","))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from the environment, refusing unknown ``CHURNWATCH_*`` names.

        pydantic-settings ignores variables it does not know; a misspelt one
        would leave a default in force without a word, so we refuse it.
        """
        environ = os.environ if environ is None else environ
        known = [variable(name) for name in cls.model_fields]
        unknown = sorted(k for k in environ if k.upper().startswith(ENV_PREFIX) and k.upper() not in known)
        if unknown:
            raise SettingsError("; ".join(_unknown(name, known) for name in unknown)
                                + " (churnwatch worker --help lists every setting)")
        try:
            given: dict[str, Any] = {} if environ is os.environ else {
                name: environ[variable(name)] for name in cls.model_fields if variable(name) in environ}
            return cls(**given)
        except ValidationError as exc:
            raise SettingsError(describe_settings_error(exc, environ)) from None


def variable(field_name: str) -> str:
    """The environment variable that sets a settings field."""
    return ENV_PREFIX + field_name.upper()


def _unknown(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name.upper(), known, n=1, cutoff=0.75)
    return f"unknown setting {name}" + (f": did you mean {close[0]}?" if close else "")


def describe_settings_error(exc: ValidationError, environ: Mapping[str, str]) -> str:
    """One line per problem, naming the variable and the value it had (secrets hidden)."""
    lines = []
    for error in exc.errors(include_url=False):
        field_name = str(error["loc"][0]) if error["loc"] else ""
        if not field_name:
            lines.append(error["msg"].removeprefix("Value error, "))
            continue
        name = variable(field_name)
        shown = "(hidden)" if "password" in field_name else repr(environ.get(name, error.get("input")))
        lines.append(f"{name}={shown}: {error['msg'].removeprefix('Value error, ')}")
    return "; ".join(lines)
