"""What the real-browser tests share: Debian's Chromium driven by Playwright for Python, and their helpers.

The tests skip (saying why) where Playwright or Chromium is missing; CI installs both
(``apt-get install -y chromium``, ``pip install ".[serve,browser-test]"``) and sets
``CNN_REQUIRE_BROWSER_TESTS=1``, which turns a missing browser into a failure.
Playwright's own browser download is never used: the system Chromium is launched
with a fresh profile folder.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("CNN_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
SCREENSHOT_DIR = os.environ.get("CNN_SERVE_SCREENSHOTS")  # set to docs/images to refresh the README pictures
WAIT_MS = 20_000
REQUIRED = os.environ.get("CNN_REQUIRE_BROWSER_TESTS") == "1"  # CI sets it: a missing browser fails instead of skipping


def require_browser() -> None:
    """Skip the calling test module (or fail it under CNN_REQUIRE_BROWSER_TESTS=1) when no browser can be driven."""
    reason = None
    if importlib.util.find_spec("playwright") is None:
        reason = "Playwright is not installed: pip install '.[browser-test]'"
    elif not CHROMIUM.is_file():
        reason = f"no Chromium at {CHROMIUM}: install it (apt-get install -y chromium) or set CNN_CHROMIUM"
    if reason is None:
        return
    if REQUIRED:
        pytest.fail(f"{reason} (CNN_REQUIRE_BROWSER_TESTS=1)", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def save_screenshot(page, locator_or_page, name: str, tmp_path: Path) -> None:
    """A full-page screenshot (or one element's) in the test's folder, copied to CNN_SERVE_SCREENSHOTS when that is set."""
    if locator_or_page is page:
        page.screenshot(path=str(tmp_path / name), full_page=True)
    else:
        locator_or_page.screenshot(path=str(tmp_path / name))
    if SCREENSHOT_DIR:  # the README's copy: 256 colours, so the repository stays small
        from PIL import Image

        Path(SCREENSHOT_DIR).mkdir(parents=True, exist_ok=True)
        with Image.open(tmp_path / name) as shot:
            shot.convert("RGB").quantize(256, dither=Image.Dither.NONE).save(Path(SCREENSHOT_DIR) / name, optimize=True)


def canvas_colours(page, selector: str) -> list[int]:
    """For every canvas matching ``selector``: how many distinct colours it shows (1 = blank)."""
    return page.eval_on_selector_all(
        selector,
        """canvases => canvases.map(c => {
            const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            const seen = new Set();
            for (let i = 0; i < data.length; i += 4) seen.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
            return seen.size;
        })""",
    )
