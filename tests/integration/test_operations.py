"""Operations on a running worker: /metrics after known traffic, /readyz, /healthz, customer lookup, its logs."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from churnwatch.schemas.events import MAX_ID_CHARS, Event
from churnwatch.kafka.publisher import EventPublisher
from churnwatch.settings import Settings
from churnwatch.kafka.reader import collect
from churnwatch.dev.embedded_broker import free_port
from churnwatch.dev.worker_process import WorkerProcess
from tests.support.brokers import Broker
from tests.support.worker import http_get, running_worker, wait_for
from churnwatch.testing.events import day, failed, login, subscription, usage

pytestmark = pytest.mark.integration
WAIT_S = 90.0


@pytest.fixture(scope="module")
def worker(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, WorkerProcess]]:
    with running_worker(broker, tmp_path_factory.mktemp("ops"), log_format="json") as pair:
        yield pair


def test_ready_and_alive(worker: tuple[Settings, WorkerProcess]) -> None:
    settings, process = worker
    # Asked from the moment the server listens: "not ready" (503) while starting, never an error.
    answers: list[int] = []
    ready = wait_for(lambda: answers.append(http_get(settings, "/readyz")[0]) or answers[-1] == 200)
    assert ready, (http_get(settings, "/readyz"), process.log_text()[-2000:])
    assert set(answers) <= {200, 503}, answers
    assert wait_for(lambda: http_get(settings, "/healthz")[0] == 200)
    body = json.loads(http_get(settings, "/readyz")[1])
    every = len(settings.input_topics) * settings.partitions
    assert body["ready"] is True and body["assigned_input_partitions"] == every


def raw_request(settings: Settings, head: str) -> int:
    """Send a request's head as written (no client tidies it up) and return the status the worker answers."""
    with socket.create_connection((settings.web_host, settings.web_port), timeout=5) as connection:
        connection.sendall(head.encode())
        status_line = connection.makefile("rb").readline()
    return int(status_line.split()[1])


def test_the_http_server_refuses_oversized_requests_and_goes_on(worker: tuple[Settings, WorkerProcess]) -> None:
    settings, process = worker
    assert wait_for(lambda: http_get(settings, "/healthz")[0] == 200)
    host = f"Host: {settings.web_host}\r\n"
    long_line = "b" * (settings.http_max_line_bytes + 10)
    # More headers than ours (64) but fewer than aiohttp's own default (128): our limit is the one in force.
    many_headers = "".join(f"X-Filler-{n}: 1\r\n" for n in range(settings.http_max_headers + 10))
    answers = {
        "request line": raw_request(settings, f"GET /customers/{long_line} HTTP/1.1\r\n{host}\r\n"),
        "header line": raw_request(settings, f"GET /healthz HTTP/1.1\r\n{host}X-Big: {long_line}\r\n\r\n"),
        "headers": raw_request(settings, f"GET /healthz HTTP/1.1\r\n{host}{many_headers}\r\n"),
        # Declared, never sent: refused from the length alone.
        "body": raw_request(settings, f"GET /metrics HTTP/1.1\r\n{host}"
                                      f"Content-Length: {settings.http_max_body_bytes + 1}\r\n\r\n"),
        "chunked body": raw_request(settings, f"GET /metrics HTTP/1.1\r\n{host}"
                                              "Transfer-Encoding: chunked\r\n\r\n"),
    }
    assert answers == {"request line": 400, "header line": 400, "headers": 400, "body": 413,
                       "chunked body": 411}, answers
    status, body = http_get(settings, "/customers/" + "c" * (MAX_ID_CHARS + 1))
    assert status == 400 and b"at most 256 characters" in body, (status, body)
    # A body within the limit is no reason to refuse.
    assert raw_request(settings, f"GET /healthz HTTP/1.1\r\n{host}Content-Length: 2\r\n\r\n{{}}") == 200
    assert http_get(settings, "/healthz")[0] == 200 and process.alive()


def test_metrics_count_known_traffic_and_lookup_shows_state(worker: tuple[Settings, WorkerProcess]) -> None:
    settings, process = worker
    events: list[Event] = [
        subscription(day(0), 250.0, action="started", customer="ops-1"),
        login(day(1), customer="ops-1"), usage(day(1), customer="ops-1"), usage(day(2), customer="ops-1"),
        failed(day(3), "card_expired", customer="ops-1"),
    ]

    async def publish() -> None:
        async with EventPublisher(settings) as publisher:
            for event in events:
                await publisher.publish(event)
            await publisher.publish_raw(settings.topic_usage, b"ops-1", b"not json at all")

    asyncio.run(publish())
    asyncio.run(collect(settings.bootstrap_servers, settings.topic_dead_letters, lambda rs: len(rs) >= 1, WAIT_S))
    asyncio.run(collect(settings.bootstrap_servers, settings.topic_alerts, lambda rs: len(rs) >= 1, WAIT_S))

    def samples() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        status, body = http_get(settings, "/metrics")
        assert status == 200
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(body.decode()) for s in family.samples}

    def counted() -> dict | None:
        found = samples()
        done = found.get(("churnwatch_events_consumed_total", (("outcome", "applied"), ("type", "usage")))) == 3
        return found if done else None

    found = wait_for(counted)
    assert found, samples()
    assert found[("churnwatch_events_consumed_total", (("outcome", "applied"), ("type", "payment")))] == 1
    assert found[("churnwatch_events_consumed_total", (("outcome", "applied"), ("type", "subscription")))] == 1
    assert found[("churnwatch_events_rejected_total", (("reason", "not_json"),))] == 1
    assert found[("churnwatch_dead_letters_written_total", ())] == 1
    assert found[("churnwatch_alerts_published_total",
                  (("rule", "payment_failure"), ("severity", "high"), ("status", "firing")))] == 1
    assert found[("churnwatch_processing_seconds_count", (("kind", "event"),))] >= 6
    assert found[("churnwatch_event_age_seconds_count", ())] == 5
    assert found[("churnwatch_customers_open_episodes", (("severity", "high"),))] == 1
    assert ("churnwatch_model_roc_auc", ()) in found
    assert not any("ops-1" in str(labels) for _, labels in found)  # no customer ids in labels
    # The sweep's clock reaches the newest event once every partition is read, and ops-1 is due again
    # (the payment episode's next check, its alert's outcome).
    swept = wait_for(lambda: (t := samples()[("churnwatch_sweep_time_seconds", ())]) >= day(3).timestamp() and t)
    assert swept, samples()
    assert samples()[("churnwatch_sweep_due_customers", ())] >= 1

    status, body = http_get(settings, "/customers/ops-1")
    assert status == 200, body
    summary = json.loads(body)
    assert summary["mrr"] == 250.0
    assert summary["last_login_at"].startswith(day(1).date().isoformat())
    assert [e["rule"] for e in summary["open_episodes"]] == ["payment_failure"]
    assert summary["features"]["unpaid_failures"] > 0
    assert summary["as_of"] >= summary["last_event_at"]  # the worker's clock, never before the customer's last event
    status, body = http_get(settings, "/customers/nobody-here")
    assert status == 404 and b"nobody-here" in body


def test_json_logs_are_one_object_a_line_and_start_with_the_settings(worker: tuple[Settings, WorkerProcess]) -> None:
    """Runs after the traffic above: its rejected message is logged with its reason."""
    settings, process = worker

    def rejection_logged() -> list[dict[str, object]] | None:
        lines = [line for line in process.log_text().splitlines() if line.strip()]
        records = [json.loads(line) for line in lines]  # every line parses
        return records if any(r.get("reason") == "not_json" for r in records) else None

    records = wait_for(rejection_logged)
    assert records, process.log_text()[-3000:]
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    (start,) = [r for r in records if str(r["message"]).startswith("churnwatch ")]
    assert start["settings"]["bootstrap_servers"] == settings.bootstrap_servers
    assert start["settings"]["log_format"] == "json"


def test_either_worker_answers_a_lookup_and_the_open_alerts_for_any_customer(
        broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> None:
    """With two workers each holds half the partitions; a lookup of the other half is forwarded, and each
    worker's ``GET /alerts`` lists the whole group's open alerts."""
    with running_worker(broker, tmp_path_factory.mktemp("lookup-a")) as (first, _):
        second = first.model_copy(update={"web_port": free_port(),
                                          "data_dir": tmp_path_factory.mktemp("lookup-b") / "data"})
        other = WorkerProcess(second, second.data_dir.parent / "worker.log", broker.worker_env).start()
        try:
            customers = [f"two-{n}" for n in range(8)]

            async def publish() -> None:
                async with EventPublisher(first) as publisher:
                    for customer in customers:
                        await publisher.publish(failed(day(1), customer=customer, invoice=f"inv-{customer}"))

            asyncio.run(publish())

            def both_ready() -> bool:
                reports = [json.loads(http_get(s, "/readyz")[1]) for s in (first, second)]
                every = len(first.input_topics) * first.partitions
                return all(r["ready"] for r in reports) and sum(r["assigned_input_partitions"] for r in reports) \
                    == every and all(r["assigned_input_partitions"] for r in reports)

            assert wait_for(both_ready), (http_get(first, "/readyz"), http_get(second, "/readyz"))

            def all_found() -> bool:
                return all(http_get(s, f"/customers/{c}")[0] == 200 for s in (first, second) for c in customers)

            assert wait_for(all_found), [(c, http_get(first, f"/customers/{c}")[0],
                                          http_get(second, f"/customers/{c}")[0])
                                         for c in customers]
            assert http_get(second, "/customers/never-seen")[0] == 404

            def open_alerts(settings: Settings) -> set[str]:
                answer = json.loads(http_get(settings, "/alerts?rule=payment_failure&limit=500")[1])
                return {a["customer_id"] for a in answer["alerts"]}

            assert wait_for(lambda: all(open_alerts(s) == set(customers) for s in (first, second))), \
                (open_alerts(first), open_alerts(second))
        finally:
            assert other.stop() == 0, other.log_text()[-3000:]
