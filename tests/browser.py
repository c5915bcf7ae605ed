"""Open local HTML reports in headless Chromium: console errors, broken images, a screenshot.

On one machine, without Grafana, the HTML reports are the dashboards a person opens, so tests
render each one as a browser would::

    from tests.browser import render_html

    page = render_html(files.html, "evaluation-report")
    assert page.console_errors == [] and page.broken_images == []

Chromium and chromedriver come from Debian (``/usr/bin``); the driver path is given explicitly so
selenium-manager never downloads anything. Screenshots go to ``test-artifacts/`` (not in git).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT

CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS_DIR = REPO_ROOT / "test-artifacts"
MAX_SCREENSHOT_HEIGHT = 6000
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True, slots=True)
class RenderedPage:
    """What a person opening the page would see, and what went wrong."""

    title: str
    text: str
    console_errors: list[str]
    broken_images: list[str]
    resource_urls: list[str]
    screenshot: Path


def _artifacts_dir() -> Path:
    """Create ``test-artifacts/`` with a ``.gitignore`` of ``*``, so nothing in it reaches git."""
    ARTIFACTS_DIR.mkdir(exist_ok=True)
    ignore = ARTIFACTS_DIR / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")
    return ARTIFACTS_DIR


def _chromium_binary() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found is not None:
            return found
    pytest.skip("chromium missing (Debian package chromium)")


@contextmanager
def chromium(width: int = 1280, height: int = 900) -> Iterator[Any]:
    """Start headless Chromium (``--headless=new --no-sandbox``) with browser logs kept; quit after."""
    if not CHROMEDRIVER.exists():
        pytest.skip(f"{CHROMEDRIVER} missing (Debian package chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = _chromium_binary()
    for argument in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-extensions", "--no-first-run", f"--window-size={width},{height}",
    ):  # fmt: skip
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def render_with(driver: Any, html_file: Path, name: str) -> RenderedPage:
    """Load ``html_file`` in an open ``driver`` (see :func:`chromium`) and inspect it."""
    driver.get_log("browser")  # drop anything left from an earlier page
    driver.get(html_file.resolve().as_uri())
    errors = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    broken = driver.execute_script(
        "return Array.from(document.images)"
        ".filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src.slice(0, 120));"
    )
    resources = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name.slice(0, 200));"
    )
    height = int(driver.execute_script("return document.documentElement.scrollHeight;"))
    driver.set_window_size(driver.get_window_size()["width"], min(max(height, 600), MAX_SCREENSHOT_HEIGHT))
    _artifacts_dir()
    screenshot = ARTIFACTS_DIR / f"{_SAFE_NAME.sub('-', name)}.png"
    driver.save_screenshot(str(screenshot))
    return RenderedPage(
        title=driver.title,
        text=driver.find_element("tag name", "body").text,
        console_errors=errors,
        broken_images=list(broken),
        resource_urls=list(resources),
        screenshot=screenshot,
    )


def render_html(html_file: Path, name: str) -> RenderedPage:
    """Open one local HTML file in a fresh headless Chromium; screenshot to ``test-artifacts/NAME.png``."""
    with chromium() as driver:
        return render_with(driver, html_file, name)
