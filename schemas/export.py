"""JSON Schema export, for publishers and subscribers written in other languages.

The exported event schemas are as strict as the worker: an event they accept
the worker accepts, and the other way round (``tests/unit/schemas/
test_exported_schemas.py`` holds both to a corpus of good and bad events).
What the worker checks beyond one message (its key, the clock, the size) is
stated in the descriptions.

Each file is named by contract and version (``event.v2.schema.json``) and
carries a ``$id`` of the same two. The alert and dead-letter schemas are
open where we may grow: a subscriber that validates them keeps working when
a minor release adds a field, a rule, a reject reason or an evidence key
(docs/publishing.md, "Compatibility").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from churnwatch.schemas.alert import ALERT_SCHEMA_VERSION, Alert, RuleName
from churnwatch.schemas.dead_letter import DEAD_LETTER_SCHEMA_VERSION, DeadLetter, RejectReason
from churnwatch.schemas.events import EVENT_ADAPTER, EVENT_MODELS, LATEST_SCHEMA_VERSION

DRAFT = "https://json-schema.org/draft/2020-12/schema"


def schema_id(name: str, version: int) -> str:
    return f"urn:churnwatch:schema:{name}:v{version}"


def _open(schema: dict[str, Any], field: str, known: list[str]) -> dict[str, Any]:
    """What we send may gain fields, and ``field`` values, within a version: the schema says so."""
    schema.pop("additionalProperties", None)
    closed = schema["properties"][field]
    schema["properties"][field] = {
        "type": "string", "minLength": 1,
        "description": f"New values may appear in a minor release; known now: {', '.join(known)}.",
    }
    schema.get("$defs", {}).pop(closed.get("$ref", "").rsplit("/", 1)[-1], None)
    return schema


def documents() -> dict[tuple[str, int], dict[str, Any]]:
    """Every contract's schema, by (name, version)."""
    found: dict[tuple[str, int], dict[str, Any]] = {
        (f"{name}_event", LATEST_SCHEMA_VERSION): model.model_json_schema() for name, model in EVENT_MODELS.items()
    }
    found[("event", LATEST_SCHEMA_VERSION)] = EVENT_ADAPTER.json_schema()
    models: dict[tuple[str, int], type[BaseModel]] = {
        ("alert", ALERT_SCHEMA_VERSION): Alert, ("dead_letter", DEAD_LETTER_SCHEMA_VERSION): DeadLetter}
    found.update({key: model.model_json_schema() for key, model in models.items()})
    _open(found[("alert", ALERT_SCHEMA_VERSION)], "rule", [rule.value for rule in RuleName])
    _open(found[("dead_letter", DEAD_LETTER_SCHEMA_VERSION)], "reason", [reason.value for reason in RejectReason])
    return {(name, version): {"$schema": DRAFT, "$id": schema_id(name, version), **schema}
            for (name, version), schema in found.items()}


def export_schemas(directory: Path) -> list[Path]:
    """Write one ``<name>.v<version>.schema.json`` per contract; returns the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for (name, version), schema in documents().items():
        path = directory / f"{name}.v{version}.schema.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        written.append(path)
    return written
