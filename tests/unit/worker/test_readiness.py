"""/readyz answers "not ready" while the worker starts, never an error.

The HTTP server listens before Faust's consumer exists; a probe asked in
that moment (Kubernetes, Compose, a test's wait) must read 503, not 500.
"""

from __future__ import annotations

from pathlib import Path

from churnwatch.http.pages import readiness
from churnwatch.rules import RulesConfig
from churnwatch.worker.app import build_app
from churnwatch.settings import Settings


def test_a_worker_whose_consumer_has_not_started_is_not_ready(tmp_path: Path) -> None:
    settings = Settings(bootstrap_servers="127.0.0.1:9", data_dir=tmp_path)
    app = build_app(settings, RulesConfig())  # the whole worker, wired, before it starts
    assert readiness(app, settings.input_topics) == {
        "ready": False, "assigned_input_partitions": 0, "recovery_complete": False, "rebalancing": False,
    }


def test_faust_s_per_message_monitor_is_quiet(tmp_path: Path) -> None:
    """Nothing of churnwatch reads Faust's own statistics: its per-message bookkeeping is off."""
    settings = Settings(bootstrap_servers="127.0.0.1:9", data_dir=tmp_path)
    monitor = build_app(settings, RulesConfig()).monitor
    monitor.on_message_in(None, 0, None)
    assert monitor.on_stream_event_in(None, 0, None, None) is None
    assert monitor.messages_received_total == 0 and monitor.events_total == 0
