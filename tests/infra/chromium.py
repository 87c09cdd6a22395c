"""Headless Chromium (Debian's), for what a catalog page does in a real browser: the DOM after its
scripts ran, and a screenshot."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.infra import require_executable


def chromium_dom(url: str, profile: Path, screenshot: Path | None = None,
                 window: tuple[int, int] = (1100, 900)) -> str:
    """The DOM after the page's scripts ran, in a window of `window` CSS pixels (width, height)."""
    executable = require_executable("chromium")
    common = [executable, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              f"--user-data-dir={profile}", "--allow-file-access-from-files", f"--window-size={window[0]},{window[1]}"]
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([*common, f"--screenshot={screenshot}", url], check=True, capture_output=True, timeout=120)
    return subprocess.run([*common, "--dump-dom", url], check=True, capture_output=True, text=True, timeout=120).stdout
