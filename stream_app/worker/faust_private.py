"""The three private Faust APIs the worker needs, in one place, each with why.

faust-streaming offers no public way to do these; they are read here, and
nowhere else, so an upgrade that moves one breaks one small module (and
``pyproject.toml`` holds ``faust-streaming`` below its next minor version
until they are checked again). Checked against 0.15.3, the pinned version.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import faust
from faust.types import TP
from yarl import URL


def committed_offset(consumer: Any, tp: TP) -> int | None:
    """The group's committed offset (next to read) of ``tp``, as the consumer sought to it at start-up.

    Why: the event clock needs it to know whether a partition it has not read
    from yet still has records waiting; Faust keeps it in
    ``Consumer._committed_offset`` and has no accessor.
    """
    offsets: dict[TP, int] = getattr(consumer, "_committed_offset", {})
    return offsets.get(tp)


def changelog_sent(table: faust.Table) -> Callable[..., Any]:
    """The table's own callback for a changelog message the broker confirmed.

    Why: the worker sends its changelog messages itself and awaits them (see
    ``changelog.ChangelogWriter.write``); Faust's table still has to hear of
    each one (``Table._on_changelog_sent``) to keep its offsets for standby
    replicas and recovery right.
    """
    callback: Callable[..., Any] = table._on_changelog_sent
    return callback


async def answer_from(app: faust.App, owner: str, web: Any, request: Any) -> Any:
    """Forward an HTTP request to the worker at ``owner`` and return its answer.

    Why: a customer lookup must answer from the worker holding the customer's
    partition; Faust's table-routing views do exactly this with
    ``Router._route_req``, which has no public name.
    """
    return await app.router._route_req(URL(owner), web, request)
