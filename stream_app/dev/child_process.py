"""A child process we start, log to a file, and stop by its pid.

The embedded broker and the worker (in the demo and the tests) both run as
children: each in a session of its own, so a Ctrl-C reaches only us and we
stop them in order.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self


class ChildProcess:
    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def spawn(self, argv: list[str], env: dict[str, str]) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def dead(self) -> bool:
        """Started and since exited."""
        return self.process is not None and self.process.poll() is not None

    def stop(self, timeout_s: float = 20.0) -> int | None:
        """SIGTERM (a clean shutdown), then SIGKILL if it does not exit in time."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=timeout_s)
        return process.returncode

    def kill(self, timeout_s: float = 20.0) -> int | None:
        """SIGKILL: a crash, with no chance to write or commit anything."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.kill()
            process.wait(timeout=timeout_s)
        return process.returncode

    def started_within(self, ready: Callable[[], bool], timeout_s: float, poll_s: float = 0.1) -> str | None:
        """Wait until ``ready()``; None when it is, else why not (the child exited or time ran out), after
        stopping the child, with the end of its log."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.dead():
                return f"exited with {self.stop()}: {self.log_tail()}"
            if ready():
                return None
            time.sleep(poll_s)
        self.stop()
        return f"was not ready within {timeout_s}s: {self.log_tail()}"

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:]) or "(no log)"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def start(self) -> Self:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
