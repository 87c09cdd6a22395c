"""Headless Chromium (Debian's), for what a catalog page does in a real browser: the DOM after its
scripts ran, and a screenshot."""

from __future__ import annotations

import html
import re
import subprocess
from pathlib import Path
from urllib.parse import quote

from tests.infra import require_executable


def chromium_dom(url: str, profile: Path, screenshot: Path | None = None,
                 window: tuple[int, int] = (1100, 900)) -> str:
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


def laid_out_width(page: Path, root: Path, base_url: str, width: int, profile: Path,
                   screenshot: Path | None = None) -> tuple[int, int, str]:
    """(scrollWidth, innerWidth, the page's DOM) of `page` (a file below `root`, which `base_url` serves)
    laid out `width` CSS pixels wide (see laid_out_widths)."""
    (measured,) = laid_out_widths([page], root, base_url, width, profile, screenshot)
    return measured


def laid_out_widths(pages: list[Path], root: Path, base_url: str, width: int, profile: Path,
                    screenshot: Path | None = None) -> list[tuple[int, int, str]]:
    """(scrollWidth, innerWidth, the page's DOM) of each of `pages` (files below `root`, which `base_url`
    serves) laid out `width` CSS pixels wide, from one start of the browser (each start costs about a
    second of CPU). Headless Chromium makes no window narrower than 500 px, so each page is
    measured in an iframe of that width on a page of the same origin, after the page's own script ran."""
    harness = root / f"measure-{width}-{pages[0].name}"
    style = f"width:{width}px;height:900px;border:0;display:block"
    frames = "\n".join(f'<iframe src="{quote(page.relative_to(root).as_posix())}" style="{style}"></iframe>'
                        f'<pre id="dom-{number}"></pre>' for number, page in enumerate(pages))
    harness.write_text(f"""<!doctype html><html><head><title>not measured</title></head><body style="margin:0">
{frames}
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
    url = base_url + "/" + quote(harness.relative_to(root).as_posix(), safe="/'")
    dom = chromium_dom(url, profile, screenshot=screenshot, window=(width + 200, 1000))
    title = re.search(r"<title>(.*?)</title>", dom)
    assert title is not None and title[1] != "not measured", dom[:500]
    measured = []
    for number, size in enumerate(title[1].split(",")):
        scroll, inner = map(int, size.split())
        shown = re.search(rf'<pre id="dom-{number}">(.*?)</pre>', dom, re.DOTALL)
        measured.append((scroll, inner, html.unescape(shown[1] if shown else "")))
    assert len(measured) == len(pages), title[1]
    return measured
