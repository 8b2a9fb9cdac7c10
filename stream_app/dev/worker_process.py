"""Running the worker as a child process: what the demo and the tests do.

A Faust worker owns its event loop and its signal handlers, so it gets a
process of its own; SIGTERM is its clean shutdown.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pydantic import SecretStr

from churnwatch.dev.child_process import ChildProcess
from churnwatch.settings import ENV_PREFIX, Settings


def settings_env(settings: Settings) -> dict[str, str]:
    """The ``CHURNWATCH_*`` variables that reproduce these settings in a child.

    Only the ones that differ from the defaults, as a user would set them: a
    worker tells a setting given from one left to its default (see
    ``embedded_broker.tuned_for_broker``).
    """
    return {
        f"{ENV_PREFIX}{name.upper()}": value.get_secret_value() if isinstance(value, SecretStr) else str(value)
        for name, value in settings.model_dump(exclude_defaults=True).items()
        if value is not None
    }


class WorkerProcess(ChildProcess):
    def __init__(self, settings: Settings, log_path: Path, extra_env: dict[str, str] | None = None):
        super().__init__(log_path)
        self.settings = settings
        self.extra_env = extra_env or {}

    def start(self) -> WorkerProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
        env.update(settings_env(self.settings))
        env.update(self.extra_env)
        self.spawn([sys.executable, "-m", "churnwatch", "worker"], env)
        return self
