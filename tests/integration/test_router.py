"""The local canary router with two real model servers: split, stickiness, shadow, breakers."""

from __future__ import annotations

import base64
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import psutil
import pytest

from cvops.processes import free_port, wait_until_ready
from tests.conftest import REPO_ROOT, fixture_path

pytestmark = pytest.mark.integration


class Routed:
    def __init__(self, url: str, process: subprocess.Popen[bytes], challenger_dir: Path) -> None:
        self.url, self.process, self.challenger_dir = url, process, challenger_dir

    def predict(self, image_b64: str, stream_id: str) -> httpx.Response:
        body = {"instances": [{"image_b64": image_b64, "stream_id": stream_id}]}
        return httpx.post(f"{self.url}/v1/models/detector:predict", json=body, timeout=60)


@pytest.fixture(scope="module")
def routed(yolox_package: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Routed]:
    root = tmp_path_factory.mktemp("variants")
    champion, challenger = root / "champion", root / "challenger"
    shutil.copytree(yolox_package, champion)
    shutil.copytree(yolox_package, challenger)
    port = free_port()
    command = [
        sys.executable, "-m", "serving.router", "--champion", str(champion), "--challenger", str(challenger),
        "--canary-percent", "30", "--shadow-percent", "100", "--allow-anonymous", "--port", str(port),
    ]  # fmt: skip
    log = Path(tempfile.mkstemp(prefix="router-", suffix=".log")[1])
    with log.open("wb") as sink:
        process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_until_ready(process, f"{url}/v2/health/ready", log, timeout_s=180)
    yield Routed(url, process, challenger)
    process.terminate()
    process.wait(timeout=60)


@pytest.fixture(scope="module")
def small_image() -> str:
    image = cv2.resize(cv2.imread(str(fixture_path("images/zidane.jpg"))), (320, 180))
    return base64.b64encode(cv2.imencode(".jpg", image)[1].tobytes()).decode()


def test_split_is_sticky_per_stream_and_near_the_canary_percent(routed: Routed, small_image: str) -> None:
    variants = {}
    for i in range(30):
        stream = f"cam-{i}"
        first = routed.predict(small_image, stream)
        again = routed.predict(small_image, stream)
        assert first.status_code == again.status_code == 200
        assert first.headers["x-cvops-variant"] == again.headers["x-cvops-variant"], stream
        variants[stream] = first.headers["x-cvops-variant"]
    share = list(variants.values()).count("challenger") / len(variants)
    assert 0.05 < share < 0.6, share


def test_shadow_traffic_records_agreement(routed: Routed, small_image: str) -> None:
    for i in range(5):
        routed.predict(small_image, f"shadow-{i}")
    deadline = time.monotonic() + 30
    stats: dict[str, object] = {}
    while time.monotonic() < deadline:
        stats = httpx.get(f"{routed.url}/router/stats").json()
        if stats["shadow"]["frames"] >= 3:  # type: ignore[index]
            break
        time.sleep(0.5)
    mean = stats["shadow"]["mean"]  # type: ignore[index]
    assert mean["mean_iou"] == pytest.approx(1.0)  # the same model on both sides
    assert mean["class_agreement"] == pytest.approx(1.0)
    assert stats["config"] == {"canaryTrafficPercent": 30, "shadowTrafficPercent": 100}


def test_challenger_down_falls_back_to_champion_and_opens_its_breaker(
    routed: Routed, small_image: str
) -> None:
    challenger_streams = []
    for i in range(200):
        if routed.predict(small_image, f"probe-{i}").headers["x-cvops-variant"] == "challenger":
            challenger_streams.append(f"probe-{i}")
        if len(challenger_streams) == 4:
            break
    for child in psutil.Process(routed.process.pid).children():
        if str(routed.challenger_dir) in " ".join(child.cmdline()):
            child.kill()  # the router is its parent and reaps it; here we only see it die
            deadline = time.monotonic() + 30
            while (
                child.is_running() and child.status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline
            ):
                time.sleep(0.1)
    answers = [routed.predict(small_image, stream) for stream in challenger_streams]
    assert [a.status_code for a in answers] == [200] * 4
    assert {a.headers["x-cvops-variant"] for a in answers} == {"champion"}
    metrics = httpx.get(f"{routed.url}/metrics").text
    assert 'cvops_breaker_state{dependency="upstream-challenger"} 2.0' in metrics
    assert httpx.get(f"{routed.url}/router/stats").json()["breakers"]["challenger"] in ("open", "half_open")
