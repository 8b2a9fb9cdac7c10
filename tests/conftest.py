"""The session's broker (``tests.support.brokers``, in the documented order); helpers live in ``tests.support``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.brokers import Broker, describe_choice, session_broker


@pytest.fixture(scope="session")
def broker() -> Iterator[Broker]:
    with session_broker() as chosen:
        yield chosen


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``broker`` every test that talks to the session's broker (through any fixture), so that the run on
    Apache Kafka (``make test-kafka``: ``-m broker``) repeats only what the broker can change."""
    for item in items:
        if "broker" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.broker)


def pytest_report_header(config: pytest.Config) -> str:
    return describe_choice()
