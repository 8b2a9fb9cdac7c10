"""The page at ``/`` in a real browser: the open alerts in ``GET /alerts``'s order, with reasons and actions.

Three customers fail a payment, the one paying most with an expired card
(the most urgent); one id holds markup, which the page must show as text.
Headless Chromium loads the page from the worker and the test reads what it
rendered; a screenshot is taken as a reader would see it.
"""

from __future__ import annotations

import json
import re
from html import unescape
from pathlib import Path

import pytest

from churnwatch.dev.browser import chromium, rendered_dom, screenshot
from churnwatch.testing.events import day, failed, subscription
from tests.support.brokers import Broker
from tests.support.worker import http_get, publish_events, running_worker, wait_for

pytestmark = pytest.mark.integration

MARKUP = "<b>bold&co</b>"


@pytest.mark.skipif(chromium() is None, reason="needs Chromium (Debian: apt-get install chromium; `make browser`)")
def test_the_support_page_shows_the_open_alerts_most_urgent_first_in_a_browser(broker: Broker,
                                                                               tmp_path: Path) -> None:
    with running_worker(broker, tmp_path / "worker") as (settings, worker):
        publish_events(settings, [
            subscription(day(1), 900.0, action="started", customer="big"),
            subscription(day(1), 40.0, action="started", customer="small"),
            subscription(day(1), 200.0, action="started", customer=MARKUP),
            failed(day(2), reason="card_expired", customer="big", invoice="inv-b"),
            failed(day(2.1), customer="small", invoice="inv-s"),
            failed(day(2.2), customer=MARKUP, invoice="inv-m"),
        ])
        answer = wait_for(lambda: (a := json.loads(http_get(settings, "/alerts")[1]))["open"] == 3 and a)
        assert answer, (http_get(settings, "/alerts"), worker.log_text()[-3000:])
        url = f"http://{settings.web_host}:{settings.web_port}/"
        status, body = http_get(settings, "/")
        assert status == 200 and body.startswith(b"<!doctype html>"), body[:300]

        dom = rendered_dom(url)
        shown = [unescape(i) for i in re.findall(r'<tr class="alert" data-alert-id="([^"]+)"', dom)]
        assert shown == [a["alert_id"] for a in answer["alerts"]], dom
        assert answer["alerts"][0]["customer_id"] == "big"  # expired card, most revenue: first
        assert "<b>bold" not in dom and "&lt;b&gt;bold&amp;co&lt;/b&gt;" in dom  # shown as text, not markup
        for alert in answer["alerts"]:
            assert alert["recommended_action"].split(",")[0] in unescape(dom)
            assert all(reason in unescape(dom) for reason in alert["reasons"])
        assert re.search(r'<p id="count">3 open</p>', dom), dom
        assert 'id="model">The model is silent' in dom  # no labels yet: the gate is shut
        assert http_get(settings, "/?severity=urgent")[0] == 400

        picture = screenshot(url, tmp_path / "page.png")
        assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and picture.stat().st_size > 10_000
