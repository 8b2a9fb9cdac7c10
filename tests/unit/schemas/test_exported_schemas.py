"""The exported JSON Schemas and the worker give the same verdict on every event of a corpus.

A publisher that validates against ``churnwatch schemas export`` output (with
format checking on, as any serious validator offers) must not have events
dead-lettered that passed, nor refused events the worker would take.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from churnwatch.schemas.alert import Alert
from churnwatch.schemas.export import export_schemas
from churnwatch.schemas.intake import Rejection, validate_event

BASE = {"event_id": "e-1", "customer_id": "c-1", "occurred_at": "2026-01-05T12:00:00Z"}
GOOD: dict[str, dict[str, Any]] = {
    "usage": {**BASE, "type": "usage", "kind": "purchase", "quantity": 2, "amount": 9.5, "currency": "EUR",
              "feature": "export_report"},
    "payment": {**BASE, "type": "payment", "status": "failed", "invoice_id": "i-1", "amount": 20,
                "currency": "USD", "failure_reason": "card_expired", "attempt": 2},
    "ticket": {**BASE, "type": "ticket", "ticket_id": "t-1", "action": "opened", "priority": "urgent",
               "category": "cancellation_request", "sentiment": -0.8, "csat": 1},
    "subscription": {**BASE, "type": "subscription", "action": "plan_changed", "plan": "basic", "mrr": 49.0,
                     "previous_mrr": 99.0, "renews_at": "2026-02-05T00:00:00+01:00", "cancel_reason": None,
                     "billing_period_months": 12, "schema_version": 2},
    "erasure": {**BASE, "type": "erasure", "case_id": "DPR-2026-17"},
}
# Values every field is tried with: the worker and the schema must agree on each.
ODD_VALUES: list[Any] = [
    None, "", " ", "x", "X" * 300, 0, -1, 1, 1.0, 2.5, 1e9, True, [], {}, "EUR", "eur",
    "2026-01-05T12:00:00Z", "2026-01-05t12:00:00.123456z", "2026-01-05T12:00:00+05:30", "2026-01-05T12:00:00",
    "2026-01-05", "2026-01-05 12:00:00Z", "2026-01-05T12:00Z", "2026-01-05T12:00:00+0100", "1969-12-31T23:59:59Z",
    "1970-01-01T00:00:00Z", "2026-02-30T12:00:00Z", "2026-13-01T00:00:00Z", 1767614400,
    "failed", "succeeded", "login", "opened", "cancelled", "voluntary", "card_expired", "urgent", "billing",
]
NAMED: dict[str, dict[str, Any]] = {
    "no type": {k: v for k, v in GOOD["usage"].items() if k != "type"},
    "unknown type": {**GOOD["usage"], "type": "refund"},
    "a failed payment without a reason": {k: v for k, v in GOOD["payment"].items() if k != "failure_reason"},
    "a failed payment with a null reason": {**GOOD["payment"], "failure_reason": None},
    "a succeeded payment without a reason": {**{k: v for k, v in GOOD["payment"].items() if k != "failure_reason"},
                                             "status": "succeeded"},
    "billing_period_months on version 1": {**GOOD["subscription"], "schema_version": 1},
    "billing_period_months, version left out": {k: v for k, v in GOOD["subscription"].items()
                                                if k != "schema_version"},
    "null billing_period_months on version 1": {**GOOD["subscription"], "billing_period_months": None,
                                                "schema_version": 1},
    "an unknown field": {**GOOD["ticket"], "priorty": "high"},
    "an id of spaces only": {**GOOD["ticket"], "ticket_id": "   "},
    "a count written 2.0": {**GOOD["usage"], "quantity": 2.0},
    "sentiment at its bound": {**GOOD["ticket"], "sentiment": 1},
    "sentiment past its bound": {**GOOD["ticket"], "sentiment": 1.01},
    "not an object": [GOOD["usage"]],
}


def _corpus() -> list[tuple[str, Any]]:
    corpus: list[tuple[str, Any]] = [(f"good {kind}", doc) for kind, doc in GOOD.items()]
    corpus += list(NAMED.items())
    for kind, doc in GOOD.items():
        for field in doc:
            corpus.append((f"{kind} without {field}", {k: v for k, v in doc.items() if k != field}))
            corpus += [(f"{kind}.{field} = {value!r}", {**doc, field: value}) for value in ODD_VALUES]
    return corpus


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    directory = tmp_path_factory.mktemp("schemas")
    return {path.name.split(".")[0]: json.loads(path.read_text()) for path in export_schemas(directory)}


def _validator(schema: dict[str, Any]) -> Draft202012Validator:
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def test_the_event_schema_and_the_worker_agree_on_every_event_of_the_corpus(
        exported: dict[str, dict[str, Any]]) -> None:
    union = _validator(exported["event"])
    by_type = {kind: _validator(exported[f"{kind}_event"]) for kind in GOOD}
    corpus = _corpus()
    disagreements = []
    for name, doc in corpus:
        worker = not isinstance(validate_event(json.dumps(doc)), Rejection)
        if union.is_valid(doc) != worker:
            disagreements.append(f"{name}: worker {'accepts' if worker else 'refuses'}")
        kind = doc.get("type") if isinstance(doc, dict) else None
        if isinstance(kind, str) and kind in by_type and by_type[kind].is_valid(doc) != worker:
            disagreements.append(f"{name} ({kind}_event schema): worker {'accepts' if worker else 'refuses'}")
    assert not disagreements, disagreements
    verdicts = [not isinstance(validate_event(json.dumps(doc)), Rejection) for _, doc in corpus]
    assert 100 < sum(verdicts) < len(corpus) - 100  # both verdicts well represented: the corpus tests something


def test_schemas_name_their_version_and_id(tmp_path: Path) -> None:
    names = sorted(path.name for path in export_schemas(tmp_path))
    assert names == sorted(["alert.v1.schema.json", "dead_letter.v1.schema.json", "event.v2.schema.json",
                            "payment_event.v2.schema.json", "subscription_event.v2.schema.json",
                            "erasure_event.v2.schema.json",
                            "ticket_event.v2.schema.json", "usage_event.v2.schema.json"])
    for name in names:
        schema = json.loads((tmp_path / name).read_text())
        contract, version = name.split(".")[:2]
        assert schema["$id"] == f"urn:churnwatch:schema:{contract}:{version}"


def test_an_alert_with_a_field_or_rule_added_later_still_validates(exported: dict[str, dict[str, Any]]) -> None:
    alerts = _validator(exported["alert"])
    alert = Alert(alert_id="a-1", customer_id="c-1", rule="payment_failure", status="firing", severity="high",
                  priority=70, risk_score=0.8, reasons=["Card expired"], evidence={"failures": 1},
                  recommended_action="Ask for a new card", triggered_at="2026-01-05T12:00:00Z",
                  episode_started_at="2026-01-05T12:00:00Z")
    doc = json.loads(alert.model_dump_json())
    assert alerts.is_valid(doc)
    assert alerts.is_valid({**doc, "owner": "csm-7", "rule": "renewal_at_risk"})
    assert not alerts.is_valid({**doc, "status": "maybe"})
    assert not alerts.is_valid({k: v for k, v in doc.items() if k != "alert_id"})
