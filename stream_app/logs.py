"""The worker's logs: plain text for a person, or one JSON object a line for a log pipeline; never a flood.

``CHURNWATCH_LOG_FORMAT=json`` gives every record as one JSON object (time,
level, logger, message, and the exception when there is one), which a log
shipper indexes without parsing text. Rejections are the one thing an
outside party can make the worker log at any rate: ``RejectionLog`` writes the
first few of each minute in full and then a count by reason, so a publisher
sending garbage cannot fill the disk or drown the other lines.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from churnwatch.schemas.intake import Rejection

# The attributes every LogRecord has; anything else on a record was passed as ``extra=``.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record; fields passed with ``extra=`` are kept as fields."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        doc.update({key: value for key, value in vars(record).items() if key not in _STANDARD})
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def logging_config(log_format: str, level: str) -> dict[str, Any] | None:
    """The worker's logging setup for ``log_format``; None keeps Faust's own (text, coloured on a terminal)."""
    if log_format != "json":
        return None
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}},
        "root": {"level": level.upper(), "handlers": ["stdout"]},
    }


class RejectionLog:
    """Logs rejected messages: the first ``shown`` of every ``window_s`` seconds, then how many more, by reason."""

    def __init__(self, logger: logging.Logger, shown: int = 10, window_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.shown = shown
        self.window_s = window_s
        self.clock = clock
        self.window_started = clock()
        self.logged = 0
        self.held_back = Counter[str]()

    def rejected(self, where: str, rejection: Rejection) -> None:
        self.flush_if_due()
        if self.logged < self.shown:
            self.logged += 1
            self.logger.warning("rejected %s: %s: %s", where, rejection.reason.value, rejection.error,
                                extra={"reason": rejection.reason.value})
        else:
            self.held_back[rejection.reason.value] += 1

    def flush_if_due(self) -> None:
        """Called now and then: a window that ended with no rejection after it still reports its count."""
        now = self.clock()
        if now - self.window_started >= self.window_s:
            self.flush()
            self.window_started = now

    def flush(self) -> None:
        """Say how many were not shown in the window that ends, and start counting afresh."""
        if self.held_back:
            reasons = ", ".join(f"{n} {reason}" for reason, n in self.held_back.most_common())
            self.logger.warning("%d more messages rejected in the last %.0f s, not shown one by one (%s); "
                                "every one is in the dead-letter topic", self.held_back.total(), self.window_s,
                                reasons, extra={"rejected_not_shown": dict(self.held_back)})
        self.logged = 0
        self.held_back = Counter()
