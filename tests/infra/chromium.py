"""Headless Chromium (Debian's), for what a catalog page does in a real browser: the DOM after its
scripts ran, and a screenshot."""

from __future__ import annotations

import html
import os
import re
import subprocess
from pathlib import Path
from urllib.parse import quote

from tests.infra import require_executable

WINDOW = (1100, 900)  # CSS pixels (width, height) of the browser's window unless a test asks for another


def chromium_dom(url: str, profile: Path, screenshot: Path | None = None,
                 window: tuple[int, int] = WINDOW) -> str:
    """The DOM after the page's scripts ran, in a window of `window` CSS pixels (width, height)."""
    executable = require_executable("chromium")
    common = [executable, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              f"--user-data-dir={profile}", "--allow-file-access-from-files", f"--window-size={window[0]},{window[1]}"]
    if screenshot is not None:  # taken by the same start of the browser as the DOM (each start: ~1 s of CPU)
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        screenshot.unlink(missing_ok=True)  # the last run's must not pass for this one's
        common.append(f"--screenshot={screenshot}")
    dom = subprocess.run([*common, "--dump-dom", url], check=True, capture_output=True, text=True, timeout=120).stdout
    assert screenshot is None or screenshot.stat().st_size > 0, f"no screenshot of {url}"
    return dom


FRAME_HEIGHT = 900  # CSS pixels of each measured page's frame
SCREENSHOTS_ENV = "EXCHANGE_TEST_ARTIFACTS"  # a directory kept for people to look at the pages the tests saw


def screenshot_path(name: str, tmp_path: Path) -> Path:
    """Where a test's screenshot `name` goes: the directory $EXCHANGE_TEST_ARTIFACTS names when set, else the
    test's tmp_path, so that a run writes nothing into the work tree."""
    kept = os.environ.get(SCREENSHOTS_ENV)
    return (Path(kept) if kept else tmp_path) / name


def laid_out_at(pages: list[Path], root: Path, base_url: str, widths: list[int], profile: Path,
                screenshot: Path | None = None) -> dict[int, list[tuple[int, int, str]]]:
    """For each of `widths`, (scrollWidth, innerWidth, the page's DOM) of each of `pages` (files below
    `root`, which `base_url` serves) laid out that many CSS pixels wide, all from one start of the browser
    (see framed). Headless Chromium makes no window narrower than 500 px: each page is measured in a frame
    of the width."""
    harness = root / f"measure-{'-'.join(map(str, widths))}-{pages[0].name}"
    shown = [(width, page) for width in widths for page in pages]
    url = base_url + "/" + quote(harness.relative_to(root).as_posix(), safe="/'")
    read = framed([(quote(page.relative_to(root).as_posix()), width) for width, page in shown], harness, url,
                  profile, screenshot)
    measured: dict[int, list[tuple[int, int, str]]] = {width: [] for width in widths}
    for (width, _), frame in zip(shown, read, strict=True):
        measured[width].append(frame)
    return measured


def doms_after_scripts(urls: list[str], harness: Path, profile: Path,
                       screenshot: Path | None = None) -> list[str]:
    """The DOM of each of `urls` after its scripts ran, from one start of the browser (see framed), each in
    a frame as wide as chromium_dom's window; `harness` is written beside them, of their origin."""
    return [dom for _, _, dom in framed([(url, WINDOW[0]) for url in urls], harness, harness.as_uri(), profile,
                                        screenshot)]


def framed(frames: list[tuple[str, int]], harness: Path, harness_url: str, profile: Path,
           screenshot: Path | None = None) -> list[tuple[int, int, str]]:
    """(scrollWidth, innerWidth, DOM) of each of `frames` (a URL as an iframe's src takes it, and its width
    in CSS pixels), read once the page's own scripts ran, from one start of the browser (each start costs
    about a second of CPU): each is an iframe of `harness` (written at `harness`, served at `harness_url`,
    of the frames' origin). Frames below the window are laid out all the same; with a screenshot the window
    is as tall as all of them."""
    tags = "\n".join(f'<iframe src="{html.escape(src)}" style="width:{width}px;height:{FRAME_HEIGHT}px;border:0;'
                     f'display:block"></iframe><pre id="dom-{number}" style="display:none"></pre>'
                     for number, (src, width) in enumerate(frames))
    harness.write_text(f"""<!doctype html><html><head><title>not measured</title></head><body style="margin:0">
{tags}
<script>
var frames = document.getElementsByTagName("iframe"), sizes = [];
window.addEventListener("load", function () {{
  for (var n = 0; n < frames.length; n++) {{
    sizes.push(frames[n].contentDocument.documentElement.scrollWidth + " " + frames[n].contentWindow.innerWidth);
    document.getElementById("dom-" + n).textContent = frames[n].contentDocument.documentElement.outerHTML;
  }}
  document.title = sizes.join(",");
}});
</script></body></html>""")
    height = FRAME_HEIGHT * len(frames) + 100 if screenshot is not None else 1000
    dom = chromium_dom(harness_url, profile, screenshot=screenshot,
                       window=(max(width for _, width in frames) + 200, height))
    title = re.search(r"<title>(.*?)</title>", dom)
    assert title is not None and title[1] != "not measured", dom[:500]
    sizes = title[1].split(",")
    assert len(sizes) == len(frames), title[1]
    read = []
    for number, size in enumerate(sizes):
        scroll, inner = map(int, size.split())
        shown = re.search(rf'<pre id="dom-{number}" style="display:none">(.*?)</pre>', dom, re.DOTALL)
        read.append((scroll, inner, html.unescape(shown[1] if shown else "")))
    return read
