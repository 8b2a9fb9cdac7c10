"""A worker's page as a real browser sees it: headless Chromium (Debian's ``chromium``), for tests and the demo.

Started with every background connection off (updates, sync, network
prediction): on a closed network Chromium otherwise fails at start looking up
its vendor's hosts, and a page that loads nothing from elsewhere needs none.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--disable-dev-shm-usage", "--hide-scrollbars")


class BrowserMissing(RuntimeError):
    pass


def chromium() -> str | None:
    """The browser's path, or None when none is installed."""
    return next((found for name in CHROMIUM_NAMES if (found := shutil.which(name))), None)


def _run(url: str, *action: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    browser = chromium()
    if browser is None:
        raise BrowserMissing("no Chromium found (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="churnwatch-browser-") as profile:
        return subprocess.run([browser, *_FLAGS, f"--user-data-dir={profile}", *action, url],
                              capture_output=True, text=True, timeout=timeout_s, check=True)


def rendered_dom(url: str, timeout_s: float = 60.0) -> str:
    """The page's DOM once loaded, serialised: what a reader of the page is shown."""
    return _run(url, "--dump-dom", timeout_s=timeout_s).stdout


def screenshot(url: str, path: Path, width: int = 1280, height: int = 900, timeout_s: float = 60.0) -> Path:
    """A PNG of the page as a browser window of ``width`` x ``height`` shows it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _run(url, f"--screenshot={path.resolve()}", f"--window-size={width},{height}", timeout_s=timeout_s)
    if not path.exists():
        raise BrowserMissing(f"Chromium wrote no screenshot of {url}")
    return path
