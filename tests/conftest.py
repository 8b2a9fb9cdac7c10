"""The session's broker (``tests.support.brokers``, in the documented order); helpers live in ``tests.support``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.brokers import Broker, describe_choice, session_broker


@pytest.fixture(scope="session")
def broker() -> Iterator[Broker]:
    with session_broker() as chosen:
        yield chosen


def pytest_report_header(config: pytest.Config) -> str:
    return describe_choice()
