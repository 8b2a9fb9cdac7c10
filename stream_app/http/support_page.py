"""The page at ``/``: what a support lead opens in the morning, on any worker.

The open alerts, most urgent first, each with its reasons and recommended
action (``GET /alerts``); how far each rule's alerts have been right so far
(``GET /rules``); whether the model may speak yet (its gate). Plain HTML
rendered here, no script and no build step: it works from any browser that
reaches the worker's port, and reloads itself every minute.
"""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import quote, urlencode

REFRESH_S = 60
PAGE_ALERTS = 100  # the alerts a page shows; GET /alerts pages further

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }
h1 { font-size: 1.4rem; margin: 0 0 .3rem; } h2 { font-size: 1.1rem; margin: 1.6rem 0 .4rem; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .3rem .5rem; vertical-align: top; }
th { border-bottom: 2px solid #999; } tr + tr td { border-top: 1px solid #ddd; }
td.n, th.n { text-align: right; } .muted { color: #666; } ul { margin: 0; padding-left: 1.1rem; }
.critical { background: #b00020; color: #fff; } .high { background: #f3c0c0; } .warning { background: #fbe7b0; }
.info { background: #e4e4e4; } .sev { padding: .1rem .4rem; border-radius: .3rem; font-size: .85rem; }
nav a { margin-right: .8rem; } td.id { white-space: nowrap; }
"""


def render_page(alerts: dict[str, Any], outcomes: dict[str, Any], model: dict[str, Any], auc_floor: float,
                query: dict[str, str]) -> str:
    """``alerts``: ``GET /alerts``'s answer for ``query``; ``outcomes``: ``GET /rules``'s; ``model``: the model's
    summary, whose gate is judged against ``auc_floor``."""
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="refresh" content="{REFRESH_S}">',
        "<title>churnwatch: open alerts</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>Open alerts</h1>",
        f'<p class="muted">worker {escape(str(outcomes.get("worker", "")))}; the whole group\'s alerts, most urgent '
        f"first (priority: severity weighted by the revenue at stake). Reloads every {REFRESH_S} s.</p>",
        _filters(alerts, query),
        _alert_table(alerts),
        "<h2>How often each rule has been right</h2>",
        _rules_table(outcomes),
        "<h2>The model</h2>",
        _model(model, auc_floor),
        "</body></html>",
    ]
    return "\n".join(parts)


def _filters(alerts: dict[str, Any], query: dict[str, str]) -> str:
    links = ['<a href="/">all</a>' if query else "<strong>all</strong>"]
    for rule, n in alerts["by_rule"].items():
        label = f"{escape(rule)} ({n})"
        links.append(f"<strong>{label}</strong>" if query.get("rule") == rule
                     else f'<a href="/?{urlencode({"rule": rule})}">{label}</a>')
    shown = len(alerts["alerts"])
    more = f"; the first {shown} shown" if shown < alerts["open"] else ""
    return f'<nav id="filters">{" ".join(links)}</nav><p id="count">{alerts["open"]} open{more}</p>'


def _alert_table(alerts: dict[str, Any]) -> str:
    if not alerts["alerts"]:
        return '<p id="none">No open alerts.</p>'
    rows = ['<table id="alerts"><tr><th class="n">priority</th><th>severity</th><th>rule</th><th>customer</th>'
            "<th>since</th><th>why</th><th>what to do</th></tr>"]
    for alert in alerts["alerts"]:
        customer = escape(alert["customer_id"])
        reasons = "".join(f"<li>{escape(r)}</li>" for r in alert["reasons"])
        rows.append(
            f'<tr class="alert" data-alert-id="{escape(alert["alert_id"])}">'
            f'<td class="n">{alert["priority"]}</td>'
            f'<td><span class="sev {escape(alert["severity"])}">{escape(alert["severity"])}</span></td>'
            f'<td>{escape(alert["rule"])}</td>'
            f'<td class="id"><a href="/customers/{quote(alert["customer_id"], safe="")}">{customer}</a></td>'
            f'<td class="id">{escape(alert["episode_started_at"][:10])}</td>'
            f"<td><ul>{reasons}</ul></td><td>{escape(alert['recommended_action'])}</td></tr>")
    rows.append("</table>")
    return "".join(rows)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _rules_table(outcomes: dict[str, Any]) -> str:
    rows = ['<table id="rules"><tr><th>rule</th><th class="n">alerts judged</th><th class="n">right</th>'
            '<th class="n">wrong</th><th class="n">precision</th><th class="n">churners warned</th>'
            '<th class="n">lead (days)</th></tr>']
    for rule, n in outcomes["rules"].items():
        if not (n["alerts_judged"] or n["churners_warned"]):
            continue
        lead = "-" if n["median_lead_days"] is None else f"{n['median_lead_days']:.0f}"
        rows.append(f'<tr><td>{escape(rule)}</td><td class="n">{n["alerts_judged"]}</td><td class="n">{n["hits"]}</td>'
                    f'<td class="n">{n["misses"]}</td><td class="n">{_percent(n["precision"])}</td>'
                    f'<td class="n">{_percent(n["recall"])}</td><td class="n">{lead}</td></tr>')
    rows.append("</table>")
    horizon = outcomes.get("horizon_days")
    note = (f'<p class="muted">An alert is right when the customer cancelled within {horizon} days of it; '
            f'{outcomes["churners"]} churners so far, {_percent(outcomes["recall"])} of them warned by some rule.'
            "</p>")
    return "".join(rows) + note if len(rows) > 2 else '<p id="no-outcomes">No alert judged yet.</p>'


def _model(model: dict[str, Any], auc_floor: float) -> str:
    bound = model.get("recent_roc_auc_bound")
    until = escape(str(model.get("learned_until") or "-")[:10])
    if model.get("gate_open"):
        verdict = "speaking: its model_risk alerts go out"
    else:
        verdict = "silent: it sends no model_risk alert until its recent ranking has earned it"
    return (f'<p id="model">The model is {verdict} (recent ROC AUC {_number(model.get("recent_roc_auc"))}, '
            f"at least {_number(bound)} at the gate's confidence, against a floor of {auc_floor:g}; "
            f"{model.get('labels', 0)} labels learned, up to {until}).</p>")


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
