"""Size limits of the worker's HTTP server (metrics, health, customer lookup).

The server answers operators and scrapers, never the public; still, nothing
it is sent may cost it more than a small, fixed amount of memory. aiohttp
already refuses request lines and headers over its limits before a handler
runs; these settings make them ours. No endpoint reads a body, so a body is
refused from its declared length (413), and one of undeclared length
(chunked) with 411, without reading it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from churnwatch.settings import Settings

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def bodies_at_most(limit: int) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    @web.middleware
    async def refuse_large_bodies(request: web.Request, handler: Handler) -> web.StreamResponse:
        length = request.content_length
        if length is None and request.body_exists:
            raise web.HTTPLengthRequired(text="a request body needs a Content-Length")
        if length is not None and length > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=length)
        return await handler(request)

    return refuse_large_bodies


def web_application_options(settings: Settings) -> dict[str, Any]:
    """Options for aiohttp's ``Application``, which Faust builds its web server from."""
    return {
        "client_max_size": settings.http_max_body_bytes,
        "middlewares": [bodies_at_most(settings.http_max_body_bytes)],
        "handler_args": {
            "max_line_size": settings.http_max_line_bytes,
            "max_field_size": settings.http_max_line_bytes,
            "max_headers": settings.http_max_headers,
        },
    }
