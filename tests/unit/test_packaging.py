"""What an installed churnwatch puts into site-packages: one import name, ``churnwatch``.

The product card's folders (``stream_app/``, ``schemas/``, ``rules/``) are
mapped under it; a generic top-level ``rules`` or ``schemas`` would clash with
other distributions (``rules`` is a popular one's import name).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"stream_app": "churnwatch", "rules": "churnwatch/rules", "schemas": "churnwatch/schemas"}


def _source_packages() -> set[str]:
    """Every package folder of the source tree, as the path it must have in the wheel."""
    found = set()
    for folder, installed in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            if "__pycache__" not in init.parts:
                found.add(str(Path(installed, init.parent.relative_to(ROOT / folder))).removesuffix("/."))
    return found


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """A wheel built from a copy of the sources (the build leaves its files in the tree it builds)."""
    copy = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", *FOLDERS):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, copy / name)
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
                            "--no-deps", "-w", str(out), str(copy)], capture_output=True, text=True, timeout=240)
    assert build.returncode == 0, build.stderr[-3000:]
    return zipfile.ZipFile(next(out.glob("churnwatch-*.whl")))


def test_the_wheel_installs_one_import_name(wheel: zipfile.ZipFile) -> None:
    top = {name.split("/")[0] for name in wheel.namelist()}
    assert {t for t in top if not t.endswith(".dist-info")} == {"churnwatch"}


def test_every_package_folder_and_the_default_rules_are_in_the_wheel(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    packaged = {name.rsplit("/", 1)[0] for name in names if name.endswith("/__init__.py")}
    assert packaged == _source_packages()
    assert "churnwatch/rules/default_rules.toml" in names


def test_a_plain_install_is_the_light_one_for_publishers(wheel: zipfile.ZipFile) -> None:
    """``pip install churnwatch``: the contracts and the publisher; the worker is ``churnwatch[worker]``."""
    metadata = next(name for name in wheel.namelist() if name.endswith(".dist-info/METADATA"))
    requires = [line.split(":", 1)[1].strip() for line in wheel.read(metadata).decode().splitlines()
                if line.startswith("Requires-Dist:")]
    plain = {re.split(r"[<>=\[; ]", r)[0].lower() for r in requires if "extra ==" not in r}
    assert plain == {"aiokafka", "pydantic", "pydantic-settings", "rich"}
    worker = {re.split(r"[<>=\[; ]", r)[0].lower() for r in requires if "extra == \"worker\"" in r}
    assert {"faust-streaming", "river", "prometheus-client"} <= worker


def test_the_publishers_modules_import_nothing_of_the_workers() -> None:
    code = ("import sys, churnwatch.schemas.events, churnwatch.schemas.export, churnwatch.kafka.publisher, "
            "churnwatch.event_files, churnwatch.cli; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & set(sys.argv[1:])))")
    from churnwatch.cli import WORKER_MODULES

    found = subprocess.run([sys.executable, "-c", code, *WORKER_MODULES], capture_output=True, text=True,
                           timeout=60, cwd=ROOT)
    assert found.returncode == 0, found.stderr[-2000:]
    assert found.stdout.strip() == "[]"
