"""The worker's HTTP pages: ``/`` (a support lead's page), ``/metrics``, ``/healthz``, ``/readyz``, ``/rules``,
``/alerts`` and ``/customers/{id}``.

Served by Faust's own web server (aiohttp), on the worker's port, with the
size limits of ``churnwatch.http.limits``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from html import escape
from typing import Any

import faust
from faust.exceptions import ConsumerNotStarted
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from churnwatch.http.lookup import CustomerLookup
from churnwatch.http.support_page import PAGE_ALERTS
from churnwatch.open_alerts import AlertQuery
from churnwatch.schemas.events import MAX_ID_CHARS


def readiness(app: faust.App, input_topics: tuple[str, ...] | list[str]) -> dict[str, object]:
    """Partitions assigned and table recovery finished: safe to send traffic."""
    try:
        assignment = app.consumer.assignment()
    except ConsumerNotStarted:  # asked while the worker is still starting
        assignment = set()
    assigned = [tp for tp in assignment if tp.topic in input_topics]
    recovered = app.tables.recovery.completed.is_set() and not app.in_recovery
    return {
        "ready": bool(assigned) and recovered and not app.rebalancing,
        "assigned_input_partitions": len(assigned),
        "recovery_complete": recovered,
        "rebalancing": bool(app.rebalancing),
    }


def add_pages(app: faust.App, registry: CollectorRegistry, ready: Callable[[], dict[str, object]],
              lookup: CustomerLookup, forward: Callable[[str, Any, Any], Awaitable[Any]],
              outcomes: Callable[[], dict[str, object]],
              open_alerts: Callable[[AlertQuery], dict[str, object]],
              support_page: Callable[[AlertQuery, dict[str, str]], str]) -> None:
    """``forward(owner, web, request)`` answers with the owner worker's answer; ``outcomes()`` with ``GET /rules``;
    ``open_alerts(query)`` with ``GET /alerts``; ``support_page(query, parameters)`` with ``GET /``."""

    @app.page("/")
    async def index(web: Any, request: Any) -> Any:
        try:
            query = AlertQuery.parse(request.query, limit=PAGE_ALERTS)
        except ValueError as exc:
            return web.html(f"<!doctype html><title>churnwatch</title><p>{escape(str(exc))}</p>", status=400)
        return web.html(support_page(query, dict(request.query)))

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        # The exposition content type has parameters (version, charset), which
        # aiohttp accepts only as a header.
        return web.bytes(generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"alive": True})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        report = ready()
        return web.json(report, status=200 if report["ready"] else 503)

    @app.page("/rules")
    async def rules(web: Any, request: Any) -> Any:
        return web.json(outcomes())

    @app.page("/alerts")
    async def alerts(web: Any, request: Any) -> Any:
        try:
            query = AlertQuery.parse(request.query)
        except ValueError as exc:
            return web.json({"error": str(exc)}, status=400)
        return web.json(open_alerts(query))

    @app.page("/customers/{customer_id}")
    async def customer(web: Any, request: Any, customer_id: str) -> Any:
        if len(customer_id) > MAX_ID_CHARS:
            return web.json({"error": f"customer ids are at most {MAX_ID_CHARS} characters"}, status=400)
        summary = lookup.summary(customer_id)
        if summary is not None:
            return web.json(summary)
        owner = lookup.owner(customer_id)
        if owner is not None and owner.rstrip("/") != str(app.conf.canonical_url).rstrip("/"):
            # Another worker holds it: answer with its answer.
            return await forward(owner, web.web, request)
        return web.json({"error": f"unknown customer {customer_id!r}"}, status=404)
