"""A real Prometheus scrapes a real model server and video pipeline; every dashboard query has data.

Prometheus (Debian 2.42) runs on a free loopback port with a 1 s scrape and rule interval and the
cvops rules loaded. Targets: ``cvops serve`` with the YOLOX-nano fixture, ``cvops stream`` on
``bikes.mp4`` with ``--metrics-port``, the canary router's code run in this process against the
model server and a dead challenger (its breaker really opens), and a synthetic exporter for what
cannot exist here: GPU series from the real collector over a fake NVML, and a pushed-style
``cvops_drift_share`` gauge (the drift job writes the real one).
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import REGISTRY, CollectorRegistry, Gauge, start_http_server

from cvops.processes import die_with_parent, free_port, wait_until_ready
from cvops.serving.gpu import GpuCollector
from tests.conftest import REPO_ROOT, fixture_path

pytestmark = pytest.mark.integration

PROMETHEUS = Path("/usr/bin/prometheus")
MONITORING = REPO_ROOT / "manifests" / "monitoring"
DASHBOARD = json.loads((MONITORING / "dashboards" / "cvops-overview.json").read_text())
# What Grafana puts for $__rate_interval at a 1 s scrape is seconds; 2m keeps the window wide enough
# that series of the pipeline, which ends after its 10 s video, still have samples when queried.
RATE_INTERVAL = "2m"
SYNTHETIC_METRICS = ("cvops_gpu_", "cvops_drift_share")
SERVER_REQUESTS = 12


def _panel_queries(synthetic: bool) -> list[tuple[str, str]]:
    queries = []
    for panel in DASHBOARD["panels"]:
        for target in panel["targets"]:
            if any(name in target["expr"] for name in SYNTHETIC_METRICS) == synthetic:
                queries.append((f"{panel['title']} [{target['refId']}]", target["expr"]))
    return queries


class _FakeNvml:
    """Stands in for NVML: no GPU here. GPU 0 is busy 97 % with 6 of 8 GiB in use."""

    def nvmlDeviceGetCount(self) -> int:
        return 1

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(used=6 * 2**30, total=8 * 2**30)

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(gpu=97)


@dataclass
class Stack:
    prometheus_url: str
    targets_while_running: list[dict[str, Any]]
    rejected_415: int

    def query(self, expr: str) -> list[dict[str, Any]]:
        expr = expr.replace("$__rate_interval", RATE_INTERVAL)
        response = httpx.get(f"{self.prometheus_url}/api/v1/query", params={"query": expr}, timeout=10)
        body = response.json()
        assert body["status"] == "success", f"{expr}: {body}"
        result: list[dict[str, Any]] = body["data"]["result"]
        return result


def _start_logged(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    # Logs go to a file: a pipe nobody reads fills up and blocks the process.
    with log.open("wb") as sink:
        return subprocess.Popen(
            command, cwd=REPO_ROOT, stdout=sink, stderr=subprocess.STDOUT, preexec_fn=die_with_parent
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def _prometheus_config(folder: Path, targets: dict[str, int]) -> Path:
    scrape = [
        {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
        for job, port in targets.items()
    ]
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(MONITORING / "rules" / "cvops.rules.yml")],
        "scrape_configs": scrape,
    }
    path = folder / "prometheus.yml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


async def _open_the_challenger_breaker(champion_url: str, image_b64: str) -> list[str]:
    """Route canary traffic to a challenger that is down: the router falls back, then its breaker opens."""
    from cvops.serving.routing import RouterConfig, Variant
    from serving.router import Router, Upstream

    async with httpx.AsyncClient(timeout=60) as client:
        router = Router(
            RouterConfig(canaryTrafficPercent=100),
            Upstream(Variant.CHAMPION, champion_url, client),
            Upstream(Variant.CHALLENGER, f"http://127.0.0.1:{free_port()}", client),
        )
        body = json.dumps({"instances": [{"image_b64": image_b64}]}).encode()
        answered = []
        for _ in range(4):
            response = await router.route("/v1/models/detector:predict", body, "application/json")
            answered.append(response.headers["x-cvops-variant"])
        return answered


def _wait_for(check: Callable[[], bool], timeout_s: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-2000:]
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}; {log.name}:\n{tail}")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def stack(yolox_package: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if not PROMETHEUS.exists():
        pytest.skip(f"{PROMETHEUS} missing (Debian package prometheus)")
    folder = tmp_path_factory.mktemp("prometheus")
    processes: list[subprocess.Popen[bytes]] = []
    exporters = []
    try:
        serve_port = free_port()
        processes.append(
            _start_logged(
                [sys.executable, "-m", "cvops", "serve", "--model", str(yolox_package),
                 "--port", str(serve_port), "--grpc-port", "0", "--allow-anonymous", "--threads", "1"],
                folder / "serve.log",
            )
        )  # fmt: skip
        server_url = f"http://127.0.0.1:{serve_port}"
        wait_until_ready(processes[-1], f"{server_url}/v2/health/ready", folder / "serve.log")

        synthetic = CollectorRegistry()
        synthetic.register(GpuCollector(_FakeNvml()))
        drift = Gauge(
            "cvops_drift_share", "Synthetic drift share.", ["reference", "current"], registry=synthetic
        )
        drift.labels(reference="synthetic-reference", current="synthetic-current").set(0.25)
        ports = {
            "serving": serve_port,
            "pipeline": free_port(),
            "router-in-test": free_port(),
            "synthetic": free_port(),
        }
        exporters.append(start_http_server(ports["synthetic"], addr="127.0.0.1", registry=synthetic)[0])
        exporters.append(start_http_server(ports["router-in-test"], addr="127.0.0.1", registry=REGISTRY)[0])

        prometheus_port = free_port()
        processes.append(
            _start_logged(
                [str(PROMETHEUS), f"--config.file={_prometheus_config(folder, ports)}",
                 f"--storage.tsdb.path={folder / 'data'}",
                 f"--web.listen-address=127.0.0.1:{prometheus_port}"],
                folder / "prometheus.log",
            )
        )  # fmt: skip
        prometheus_url = f"http://127.0.0.1:{prometheus_port}"
        wait_until_ready(processes[-1], f"{prometheus_url}/-/ready", folder / "prometheus.log", timeout_s=30)

        processes.append(
            _start_logged(
                [sys.executable, "-m", "cvops", "stream", "--source", str(fixture_path("video/bikes.mp4")),
                 "--model", str(yolox_package), "--realtime", "--threads", "1",
                 "--metrics-port", str(ports["pipeline"])],
                folder / "stream.log",
            )
        )  # fmt: skip
        stack = Stack(prometheus_url, [], 0)

        def pipeline_scraped() -> bool:
            return bool(stack.query("cvops_video_frames_processed_total > 20"))

        # The video lasts 10 s: look at the targets while the pipeline still runs.
        _wait_for(
            pipeline_scraped, 60, "the pipeline's processed frames in Prometheus", folder / "stream.log"
        )

        def every_target_scraped() -> bool:
            # A target reads "unknown" until its first scrape; on a loaded machine that can lag.
            targets = httpx.get(f"{prometheus_url}/api/v1/targets", timeout=10).json()
            stack.targets_while_running = targets["data"]["activeTargets"]
            return all(t["health"] != "unknown" for t in stack.targets_while_running)

        _wait_for(every_target_scraped, 30, "a first scrape of every target", folder / "prometheus.log")

        image = base64.b64encode(fixture_path("images/bus.jpg").read_bytes()).decode()
        for i in range(SERVER_REQUESTS):
            response = httpx.post(
                f"{server_url}/v1/models/detector:predict",
                json={"instances": [{"image_b64": image, "stream_id": "cam-a", "frame_index": i}]},
                timeout=60,
            )
            assert response.status_code == 200, response.text
        for _ in range(2):  # refused by the gate: counted as rejected, reason content_type
            refused = httpx.post(
                f"{server_url}/v1/models/detector:predict",
                content=b"x",
                headers={"content-type": "text/plain"},
            )
            stack.rejected_415 += refused.status_code == 415
        variants = asyncio.run(_open_the_challenger_breaker(server_url, image))
        assert variants == ["champion"] * 4, "the router falls back to the champion"
        time.sleep(3)  # a few more 1 s scrapes and rule evaluations
        yield stack
    finally:
        for server in exporters:
            server.shutdown()
        for process in reversed(processes):
            _stop(process)


def test_prometheus_scrapes_the_server_pipeline_router_and_synthetic_exporter(stack: Stack) -> None:
    health = {t["labels"]["job"]: t["health"] for t in stack.targets_while_running}
    assert health == {"serving": "up", "pipeline": "up", "router-in-test": "up", "synthetic": "up"}, [
        t.get("lastError") for t in stack.targets_while_running
    ]


@pytest.mark.parametrize(("panel", "expr"), _panel_queries(synthetic=False), ids=lambda v: str(v)[:60])
def test_dashboard_panel_has_data_after_real_traffic(stack: Stack, panel: str, expr: str) -> None:
    result = stack.query(expr)
    values = [float(sample["value"][1]) for sample in result]
    assert any(math.isfinite(v) for v in values), f"{panel}: no data for {expr}"


@pytest.mark.parametrize(("panel", "expr"), _panel_queries(synthetic=True), ids=lambda v: str(v)[:60])
def test_dashboard_panel_has_data_from_synthetic_gpu_and_drift_series(
    stack: Stack, panel: str, expr: str
) -> None:
    result = stack.query(expr)
    assert result, f"{panel}: no data for {expr}"
    assert all(sample["metric"].get("gpu") in (None, "0") for sample in result)


def test_real_traffic_values_make_sense(stack: Stack) -> None:
    served = stack.query('sum(cvops_request_seconds_count{job="serving", code="200"})')
    assert float(served[0]["value"][1]) >= SERVER_REQUESTS
    rejected = stack.query('sum(cvops_rejected_requests_total{job="serving", reason="content_type"})')
    assert float(rejected[0]["value"][1]) == stack.rejected_415 == 2
    breaker = stack.query('cvops_breaker_state{job="router-in-test"}')
    states = {s["metric"]["dependency"]: s["value"][1] for s in breaker}
    assert states["upstream-challenger"] == "2", states  # open
    assert states.get("upstream-champion", "0") == "0", states
    # last_over_time: the pipeline has ended with its video; its last samples count.
    per_frame = stack.query(
        "sum by (job) (last_over_time(cvops_detections_per_frame_sum[2m]))"
        " / sum by (job) (last_over_time(cvops_detections_per_frame_count[2m]))"
    )
    assert {s["metric"]["job"] for s in per_frame} == {"serving", "pipeline"}
    assert all(float(s["value"][1]) >= 1 for s in per_frame), "bus.jpg and bikes.mp4 show objects"
    buckets = stack.query('sum by (le) (last_over_time(cvops_detection_score_bucket{job="pipeline"}[2m]))')
    counts = sorted(float(s["value"][1]) for s in buckets)
    assert len(set(counts)) > 2, "scores spread over several buckets"


def test_rules_load_and_evaluate_on_real_series_without_errors(stack: Stack) -> None:
    groups = httpx.get(f"{stack.prometheus_url}/api/v1/rules", timeout=10).json()["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    in_file = yaml.safe_load((MONITORING / "rules" / "cvops.rules.yml").read_text())["groups"]
    assert len(rules) == sum(len(group["rules"]) for group in in_file)
    assert [r["name"] for r in rules if r["health"] != "ok"] == []
    p99 = stack.query('cvops:request_latency_seconds:p99_5m{job="serving"}')
    assert p99
    assert 0 < float(p99[0]["value"][1]) < 5
    # The synthetic GPU is 97 % busy: the alert is pending, and fires only after 15 minutes.
    alerts = {(a["metric"]["alertname"], a["metric"]["alertstate"]) for a in stack.query("ALERTS")}
    assert ("CvopsGpuSaturated", "pending") in alerts
    assert not {state for _, state in alerts} - {"pending"}


def test_a_panel_query_for_a_missing_metric_has_no_data(stack: Stack) -> None:
    assert stack.query("sum by (job) (rate(cvops_no_such_metric_total[$__rate_interval]))") == []
