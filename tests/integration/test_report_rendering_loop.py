"""The loop's own pages render in headless Chromium without console errors: drift and run reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from cvops.data.synthetic import generate_scenes
from cvops.monitoring.drift import detect_drift
from cvops.orchestration.kfp_runner import run_local
from cvops.orchestration.run_report import write_run_report
from tests.browser import render_html
from tests.integration.test_kfp_runner import TINY

pytestmark = pytest.mark.integration


def test_drift_report_renders_with_no_console_errors(tmp_path: Path) -> None:
    reference = generate_scenes(tmp_path / "a", 24, 1, 64, seed=1).root / "images" / "train"
    current = generate_scenes(tmp_path / "b", 24, 1, 64, seed=2).root / "images" / "train"
    result = detect_drift(reference, current, tmp_path / "drift")
    assert result.html_paths
    for index, html_file in enumerate(result.html_paths):
        page = render_html(html_file, f"drift-report-{index}")
        assert page.console_errors == []
        assert page.broken_images == []
        assert "brightness_gray" in page.text


def test_run_report_renders_its_timeline_and_steps(tmp_path: Path) -> None:
    pipeline = tmp_path / "repo" / "pipelines" / "tiny.py"
    pipeline.parent.mkdir(parents=True)
    pipeline.write_text(TINY)
    run = run_local(pipeline, {"n": 3}, tmp_path / "root")
    report = write_run_report(
        run, tmp_path / "report", {"MLflow": "mlflow ui --backend-store-uri sqlite:///x"}
    )
    page = render_html(report, "run-report")
    assert page.console_errors == []
    assert page.broken_images == []
    assert "count" in page.text
    assert "decide" in page.text
    assert all(url.startswith(("data:", "file:")) for url in page.resource_urls), page.resource_urls
