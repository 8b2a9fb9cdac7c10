"""JSON Schema export, for publishers and subscribers written in other languages."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from churnwatch.schemas.alert import Alert
from churnwatch.schemas.dead_letter import DeadLetter
from churnwatch.schemas.events import EVENT_ADAPTER, EVENT_MODELS


def export_schemas(directory: Path) -> list[Path]:
    """Write one ``<name>.schema.json`` per contract; returns the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    documents: dict[str, dict[str, object]] = {
        f"{name}_event": model.model_json_schema() for name, model in EVENT_MODELS.items()
    }
    documents["event"] = EVENT_ADAPTER.json_schema()
    models: dict[str, type[BaseModel]] = {"alert": Alert, "dead_letter": DeadLetter}
    documents.update({name: model.model_json_schema() for name, model in models.items()})
    written = []
    for name, schema in documents.items():
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
        path = directory / f"{name}.schema.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        written.append(path)
    return written
