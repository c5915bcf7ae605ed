"""The HTML reports people open render in headless Chromium: no console errors, no broken images.

Screenshots land in ``test-artifacts/``. New reports (drift, pipeline run) add one test each with
:func:`tests.browser.render_html`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cvops.evaluation.detection import evaluate_detections_data
from cvops.evaluation.report import write_report
from cvops.registry.model_card import HTML_FILE, render_model_card
from tests.browser import chromium, render_html, render_with
from tests.unit.test_evaluation_detection import BOX, OTHER, SHIFT_2, coco_gt, det
from tests.unit.test_model_card import record

pytestmark = pytest.mark.integration


def test_evaluation_report_renders_with_its_figures_and_no_console_errors(tmp_path: Path) -> None:
    gt = coco_gt([(1, 1, BOX), (1, 2, OTHER), (2, 1, BOX), (2, 2, SHIFT_2)], images=2)
    report = evaluate_detections_data(gt, [det(1, 1, BOX), det(1, 1, OTHER, 0.5), det(2, 2, SHIFT_2, 0.7)])
    files = write_report(tmp_path / "eval", report, title="Tiny evaluation")
    page = render_html(files.html, "evaluation-report")
    assert page.console_errors == []
    assert page.broken_images == []
    assert page.title == "Tiny evaluation"
    assert "cat" in page.text
    assert "dog" in page.text
    assert all(url.startswith(("data:", "file:")) for url in page.resource_urls), page.resource_urls
    assert page.screenshot.stat().st_size > 10_000


def test_model_card_renders_its_tables_with_no_console_errors(tmp_path: Path) -> None:
    card = render_model_card(record())
    html_file = tmp_path / HTML_FILE
    html_file.write_text(card.html, encoding="utf-8")
    page = render_html(html_file, "model-card")
    assert page.console_errors == []
    assert page.title == "Model card: detector version 4"
    assert "Intended use" in page.text
    assert "traffic@v7" in page.text
    assert page.resource_urls == [], "the card loads nothing"


def test_helper_reports_console_errors_and_broken_images(tmp_path: Path) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<!DOCTYPE html><html><head><title>bad</title></head><body><p>x</p>"
        '<img src="missing.png"><script>console.error("boom"); undefinedFunction();</script></body></html>'
    )
    good = tmp_path / "good.html"
    good.write_text("<!DOCTYPE html><html><head><title>good</title></head><body><p>fine</p></body></html>")
    with chromium() as driver:
        broken = render_with(driver, bad, "helper-bad-page")
        fine = render_with(driver, good, "helper-good-page")
    assert any("boom" in message for message in broken.console_errors)
    assert any("undefinedFunction" in message for message in broken.console_errors)
    assert [src.rsplit("/", 1)[-1] for src in broken.broken_images] == ["missing.png"]
    assert fine.console_errors == [], "errors of an earlier page are not carried over"
    assert fine.screenshot.name == "helper-good-page.png"
    assert fine.screenshot.is_file()
