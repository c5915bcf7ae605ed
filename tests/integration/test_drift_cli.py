"""``cvops drift`` as a user runs it, and where its results go: Prometheus, Pushgateway, MLflow."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from cvops.cli.app import main
from cvops.monitoring.drift import detect_drift
from cvops.monitoring.model_events import LATEST_DRIFT_TAG, drift_events
from cvops.processes import die_with_parent, free_port, wait_until_ready
from tests.conftest import fixture_path

pytestmark = pytest.mark.integration

PUSHGATEWAY = "/usr/bin/prometheus-pushgateway"
PROMTOOL = "/usr/bin/promtool"


def _sequence(name: str) -> Path:
    return fixture_path(f"mot17-mini/train/{name}/img1")


def test_cli_writes_reports_gauges_and_candidates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``cvops drift`` on two MOT17 scenes, image features only (no model).

    In-process (``cvops.cli.app.main``, what the console script calls): a fresh interpreter
    would import Evidently again (~15 s on 2 busy cores) and test nothing more.
    """
    out = tmp_path / "out"
    code = main(
        [
            "drift",
            "--reference",
            str(_sequence("MOT17-04-FRCNN")),
            "--current",
            str(_sequence("MOT17-11-FRCNN")),
            "--out",
            str(out),
            "--fail-on-drift",
        ]
    )
    printed = capsys.readouterr()
    assert code == 3, printed.err  # --fail-on-drift: the scenes differ
    assert "DRIFT" in printed.out
    report = json.loads((out / "drift.json").read_text())
    assert report["is_drifted"] is True
    assert {"brightness_gray", "image_embedding"} <= set(report["drifted_features"])
    assert any("no detector ran" in note for note in report["skipped"])
    assert len((out / "candidates.txt").read_text().splitlines()) == 7  # MOT17-11 has 7 frames
    assert (out / "drift_frames.html").stat().st_size > 100_000
    if Path(PROMTOOL).exists():
        checked = subprocess.run(
            [PROMTOOL, "check", "metrics"],
            input=(out / "drift.prom").read_text(),
            capture_output=True,
            text=True,
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
    assert (
        'cvops_drift_share{current="MOT17-11-FRCNN/img1",reference="MOT17-04-FRCNN/img1"}'
        in (out / "drift.prom").read_text()
    )
    # The computed tables are a FEATURES input for the next check: no image is read again.
    again = detect_drift(out / "reference_features", out / "current_features", tmp_path / "again")
    assert again.drift_share == report["drift_share"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--current", "{tmp}/nope"], "no such path"),
        (["--current", "{tmp}/empty"], "found none"),
        (["--current", "{seq}", "--model-name", "m"], "--model-name and --model-version"),
        (["--current", "{seq}", "--model", "{tmp}"], "model.json"),
    ],
    ids=["missing-current", "empty-folder", "name-without-version", "not-a-package"],
)
def test_cli_bad_input_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    (tmp_path / "empty").mkdir()
    seq = str(_sequence("MOT17-09-FRCNN"))
    filled = [a.format(tmp=tmp_path, seq=seq) for a in args]
    code = main(["drift", "--reference", seq, *filled, "--out", str(tmp_path / "out")])
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert message in lines[0]


@pytest.fixture
def pushgateway(tmp_path: Path) -> Iterator[str]:
    """A real Prometheus Pushgateway on 127.0.0.1, stopped by PID."""
    if not Path(PUSHGATEWAY).exists():
        pytest.skip(f"{PUSHGATEWAY} missing (Debian package prometheus-pushgateway)")
    port = free_port()
    log = tmp_path / "pushgateway.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [PUSHGATEWAY, f"--web.listen-address=127.0.0.1:{port}"],
            stdout=sink,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
    try:
        wait_until_ready(process, f"http://127.0.0.1:{port}/-/ready", log, timeout_s=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_gauges_reach_a_real_pushgateway(pushgateway: str, tmp_path: Path) -> None:
    result = detect_drift(
        _sequence("MOT17-02-FRCNN"),
        _sequence("MOT17-09-FRCNN"),
        tmp_path,
        reference_label="cam-02",
        current_label="cam-09",
        pushgateway_url=pushgateway,
    )
    with urllib.request.urlopen(f"{pushgateway}/metrics", timeout=5) as response:
        scraped = response.read().decode()
    share = [line for line in scraped.splitlines() if line.startswith("cvops_drift_share{")]
    assert len(share) == 1
    assert 'current="cam-09"' in share[0]
    assert 'job="cvops_drift"' in share[0]
    assert float(share[0].rsplit(" ", 1)[1]) == pytest.approx(result.drift_share)
    assert 'cvops_drift_feature_drifted{current="cam-09",feature="brightness_gray"' in scraped


def test_push_to_a_dead_gateway_is_one_clear_error(tmp_path: Path) -> None:
    from cvops.errors import MetricsPushError

    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(MetricsPushError, match="push failed"):
        detect_drift(_sequence("MOT17-02-FRCNN"), _sequence("MOT17-09-FRCNN"), tmp_path, pushgateway_url=url)
    assert (tmp_path / "drift.json").is_file()  # the files were written before the push


def test_drift_is_recorded_on_the_registered_model_version(yolox_package: Path, tmp_path: Path) -> None:
    """The real YOLOX-nano registered in MLflow (sqlite), used by URI and tagged with the event."""
    from cvops.registry.mlflow_registry import ModelRegistry

    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    registry = ModelRegistry(tracking_uri, state_dir=tmp_path)
    version = registry.register(yolox_package, "drift-yolox")
    registry.promote("drift-yolox", version.version, who="test", why="drift test")
    shutil.rmtree(tmp_path / "registry-cache", ignore_errors=True)
    result = detect_drift(
        _sequence("MOT17-04-FRCNN"),
        _sequence("MOT17-05-FRCNN"),
        tmp_path / "out",
        "models:/drift-yolox@champion",
        tracking_uri=tracking_uri,
    )
    assert result.recorded_on == f"models:/drift-yolox/{version.version}"
    assert result.current_boxes is not None
    assert result.current_boxes > 0
    events = drift_events("models:/drift-yolox/1", tracking_uri=tracking_uri)
    assert len(events) == 1
    assert events[0]["drift_share"] == round(result.drift_share, 4)
    assert events[0]["is_drifted"] is True
    from mlflow import MlflowClient

    tags = MlflowClient(tracking_uri=tracking_uri).get_model_version("drift-yolox", "1").tags
    assert json.loads(tags[LATEST_DRIFT_TAG])["current"] == "MOT17-05-FRCNN/img1"
    saved = json.loads((tmp_path / "out" / "drift.json").read_text())
    assert saved["recorded_on"] == "models:/drift-yolox/1"
