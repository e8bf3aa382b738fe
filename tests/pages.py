"""Checks an HTML page the way a reader sees it: opened in headless Chromium (Debian
`chromium`, installed by `make test`) at 1280 px, with a script that measures the laid-out page
(scroll width, title, images that did not load, text that overlaps other text or is cut off in
its box), and a screenshot written beside the results (`SCREENSHOTS`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

WIDTH = 1280
SCREENSHOTS = Path(__file__).resolve().parent.parent / "data" / "test-output" / "pages"

_MEASURE = """
<script>
window.addEventListener('load', () => {
  const rects = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (!node.textContent.trim() || node.parentElement.closest('script,style,#page-check')) continue;
    const range = document.createRange();
    range.selectNodeContents(node);
    for (const r of range.getClientRects()) {
      if (r.width > 0 && r.height > 0) rects.push({r, text: node.textContent.trim().slice(0, 40)});
    }
  }
  const overlaps = [];
  for (let i = 0; i < rects.length && overlaps.length < 20; i++) {
    for (let j = i + 1; j < rects.length; j++) {
      const a = rects[i].r, b = rects[j].r;
      const w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
      const h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
      if (w > 2 && h > 2) overlaps.push([rects[i].text, rects[j].text]);
    }
  }
  const cut = [...document.querySelectorAll('body *')].filter(e => {
    const style = getComputedStyle(e);
    return ['hidden', 'clip'].includes(style.overflowX) && e.scrollWidth > e.clientWidth + 1;
  }).map(e => e.textContent.trim().slice(0, 40));
  const images = [...document.images];
  const result = {
    title: document.title, scroll_width: document.documentElement.scrollWidth, images: images.length,
    broken_images: images.filter(i => !i.complete || i.naturalWidth === 0).map(i => (i.getAttribute('src') || '').slice(0, 60)),
    wide_images: images.filter(i => i.getBoundingClientRect().right > window.innerWidth + 1).length,
    overlaps, cut, text_boxes: rects.length,
  };
  const out = document.createElement('pre');
  out.id = 'page-check';
  out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
});
</script>
"""


def chromium() -> str:
    """The browser, or a skip (a failure under CI=true, where `make test` installed it)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail("chromium is not installed: `make test` installs it (make browser)")
    pytest.skip("chromium is not installed (make browser)")


def _run(browser: str, *arguments: str, height: int = 900) -> subprocess.CompletedProcess:
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               f"--window-size={WIDTH},{height}", *arguments]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def check_page(page: Path) -> dict:
    """The page's measurements (see `_MEASURE`), after a screenshot of it under SCREENSHOTS."""
    browser, page = chromium(), page.resolve()
    text = page.read_text()
    probe = page.with_name(f".check-{page.name}")  # beside the page, so its images resolve
    probe.write_text(text.replace("</body>", f"{_MEASURE}</body>") if "</body>" in text else text + _MEASURE)
    try:
        dumped = _run(browser, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri())
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        _run(
            browser,
            "--virtual-time-budget=5000",
            f"--screenshot={SCREENSHOTS / (page.stem + '.png')}",
            page.as_uri(),
            height=3200,
        )  # the first screens of the page
    finally:
        probe.unlink()
    start = dumped.stdout.find('<pre id="page-check">')
    assert start >= 0, f"{page.name}: the page check did not run in Chromium: {dumped.stderr[-500:]}"
    body = dumped.stdout[start + len('<pre id="page-check">') : dumped.stdout.index("</pre>", start)]
    return json.loads(body.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&amp;", "&"))


def assert_readable(page: Path) -> dict:
    """A page a compliance officer can read at 1280 px: a title, no sideways scrolling, every
    image loaded and inside the window, no text over other text or cut off in its box."""
    found = check_page(page)
    where = f"{page.name} (screenshot: {SCREENSHOTS / (page.stem + '.png')})"
    assert found["title"].strip(), f"{where}: no title"
    assert found["scroll_width"] <= WIDTH, f"{where}: {found['scroll_width']} px wide at {WIDTH}"
    assert not found["broken_images"], f"{where}: images not loaded: {found['broken_images']}"
    assert not found["wide_images"], f"{where}: an image runs past the window"
    assert not found["overlaps"], f"{where}: text over text: {found['overlaps'][:5]}"
    assert not found["cut"], f"{where}: text cut off: {found['cut'][:5]}"
    return found
