"""Log lines: JSON when asked, and rejections that cannot flood the log."""

from __future__ import annotations

import json
import logging

import pytest

from churnwatch.logs import JsonFormatter, RejectionLog
from churnwatch.schemas.dead_letter import RejectReason
from churnwatch.schemas.intake import Rejection


def test_a_record_is_one_json_object_with_its_extra_fields() -> None:
    logger = logging.getLogger("churnwatch.test")
    record = logger.makeRecord("churnwatch.test", logging.WARNING, __file__, 1, "rejected %s", ("x[0]@1",), None,
                               extra={"reason": "not_json"})
    doc = json.loads(JsonFormatter().format(record))
    assert doc["level"] == "warning" and doc["message"] == "rejected x[0]@1" and doc["reason"] == "not_json"
    assert doc["logger"] == "churnwatch.test" and doc["time"].endswith("+00:00")


def test_rejections_beyond_a_few_a_minute_are_counted_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    log = RejectionLog(logging.getLogger("churnwatch.test.rejections"), shown=3, window_s=60, clock=lambda: now[0])
    bad = Rejection(RejectReason.NOT_JSON, "not JSON")
    with caplog.at_level(logging.WARNING, logger="churnwatch.test.rejections"):
        for _ in range(10):
            log.rejected("t[0]@1", bad)
        log.rejected("t[0]@2", Rejection(RejectReason.KEY_MISMATCH, "wrong key"))
        assert len(caplog.records) == 3
        now[0] = 61.0
        log.flush_if_due()  # the window ended quietly: its count is said anyway
        assert caplog.records[-1].getMessage().startswith("8 more messages rejected in the last 60 s")
        assert caplog.records[-1].rejected_not_shown == {"not_json": 7, "key_mismatch": 1}
        log.rejected("t[0]@3", bad)  # a new window shows rejections again
        assert len(caplog.records) == 5 and "t[0]@3" in caplog.records[-1].getMessage()
