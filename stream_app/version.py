"""Which churnwatch runs, and on what: for ``--version`` and the build-info metric."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def version_of(distribution: str) -> str:
    """An installed distribution's version, or "unknown" (files run without installing them)."""
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"


def product_version() -> str:
    return version_of("churnwatch")
