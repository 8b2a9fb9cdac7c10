"""A worker's own JSON files (the alert outcomes, the open alerts), written so a crash never leaves half of one."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def save_json(path: Path, data: Any) -> None:
    """Write atomically: a crash mid-write leaves the previous file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as out:
        json.dump(data, out)
    os.replace(tmp, path)


def load_json(path: Path) -> Any | None:
    """The file's content; None when there is none yet."""
    if not path.exists():
        return None
    return json.loads(path.read_text())
