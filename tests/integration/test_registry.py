"""The model registry against a real ``mlflow server`` on loopback and against the embedded sqlite default."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cvops.detection.loader import load_detector
from cvops.errors import RegistryError, RegistryNotFoundError, RegistryUnavailableError
from cvops.images import read_image
from cvops.processes import die_with_parent, free_port, wait_until_ready
from cvops.registry.mlflow_registry import ModelRegistry, resolve_model_uri
from cvops.registry.model_card import write_model_card
from cvops.registry.records import Lineage
from cvops.registry.retry import RetryPolicy
from cvops.serving.breaker import CircuitBreaker
from tests.conftest import fixture_path

pytestmark = pytest.mark.integration

FAST_RETRY = RetryPolicy(
    attempts=3, first_backoff_s=0.2, max_backoff_s=1.0, deadline_s=5.0, request_timeout_s=10
)


@dataclass(frozen=True)
class _Server:
    process: subprocess.Popen[bytes]
    url: str
    log: Path


@pytest.fixture(scope="module", autouse=True)
def _mlflow_server_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Server]:
    """Start ``mlflow server`` (sqlite backend, local artifact folder, one worker) on a free port.

    Started for the whole module without waiting: it takes 10-25 s to answer, time the embedded
    tests (which come first) use. ``mlflow_server`` waits for it.
    """
    root = tmp_path_factory.mktemp("mlflow_server")
    port = free_port()
    command = [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination",
        str(root / "artifacts"),
    ]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    log = root / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=root, preexec_fn=die_with_parent
        )
    try:
        yield _Server(process, f"http://127.0.0.1:{port}", log)
    finally:
        # SIGTERM to `mlflow server` also stops the uvicorn worker it started.
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def mlflow_server(_mlflow_server_process: _Server) -> str:
    """The URL of the module's ``mlflow server``, once it answers."""
    server = _mlflow_server_process
    wait_until_ready(server.process, f"{server.url}/health", server.log, timeout_s=90)
    return server.url


def _exercise_lifecycle(registry: ModelRegistry, package: Path, tmp_path: Path) -> None:
    """Register v1 and v2 with lineage, promote, roll back, resolve, load, and write the card."""
    name = "yolox-nano"
    v1 = registry.register(
        package,
        name,
        Lineage(
            dataset_version="coco-val-2017@v1", dataset_uri="s3://datasets/coco/v1", code_revision="abc123"
        ),
        {"map50": 0.41, "per_class/person/ap50": 0.62},
        variants={"copy": package},
    )
    assert (v1.version, v1.is_complete, v1.variants) == (1, True, ("copy",))
    assert v1.lineage.dataset_version == "coco-val-2017@v1"
    registry.promote(name, v1.version, "alice", "first model", {"map50": 0.41})

    v2 = registry.register(
        package,
        name,
        Lineage(dataset_version="coco-val-2017@v2", parent_version=f"{name}/1", pipeline_run_id="run-7"),
        {"map50": 0.47},
    )
    registry.promote(name, v2.version, "ci", "shadow test", alias="challenger")
    registry.promote(name, v2.version, "bob", "beats champion by 6 points", {"map50_delta": 0.06})
    assert registry.aliases(name) == {"champion": 2}

    history = registry.history(name)
    moves = [(e.alias, e.action, e.from_version, e.to_version, e.who, e.why) for e in history]
    assert moves == [
        ("champion", "promote", None, 1, "alice", "first model"),
        ("challenger", "promote", None, 2, "ci", "shadow test"),
        ("champion", "promote", 1, 2, "bob", "beats champion by 6 points"),
        ("challenger", "retire", 2, None, "bob", "promoted to champion: beats champion by 6 points"),
    ]
    assert history[2].evidence == {"map50_delta": 0.06}
    assert [e.sequence for e in history] == [1, 2, 3, 4]

    rolled = registry.rollback(name, "carol", "false alarms at night")
    assert (rolled.from_version, rolled.to_version) == (2, 1)
    assert registry.aliases(name) == {"champion": 1}
    assert registry.show(name, "champion").version == 1
    assert registry.history(name)[-1].who == "carol"
    with pytest.raises(RegistryError, match="no earlier champion"):
        registry.rollback(name, "carol", "again")

    package_dir = registry.resolve(f"models:/{name}@champion", tmp_path / "cache")
    assert package_dir == tmp_path / "cache" / name / f"1-{registry.show(name, 1).run_id}"
    detector = load_detector(package_dir)
    (found,) = detector.detect([read_image(fixture_path("images/bus.jpg"))])
    assert "bus" in {detector.class_names[i] for i in found.class_ids.tolist()}
    assert registry.resolve(f"models:/{name}/2", tmp_path / "cache").name.startswith("2-")
    variant = registry.download(name, 1, tmp_path / "variant", variant="copy")
    assert (variant / "model.onnx").stat().st_size == (package / "model.onnx").stat().st_size

    card = write_model_card(registry, name, 1, tmp_path / "card")
    for path in (card.markdown, card.html):
        text = path.read_text()
        assert "coco-val-2017@v1" in text
        assert "map50" in text
        assert "0.41" in text
    assert "person" in card.markdown.read_text()  # the per-class table
    assert card.artifact_uri.endswith("/model_card")
    stored = registry.show(name, 1)
    assert stored.run_id in card.artifact_uri


def test_two_registries_sharing_a_state_folder_resolve_their_own_packages(
    yolox_package: Path, tmp_path: Path
) -> None:
    # A stale cache keyed by NAME/VERSION alone once served the other registry's version 1.
    resolved = []
    for registry_name in ("first", "second"):
        uri = f"sqlite:///{tmp_path / f'{registry_name}.db'}"
        registry = ModelRegistry(uri, state_dir=tmp_path / "state")
        registry.register(yolox_package, "det")
        resolved.append(registry.resolve("models:/det/1"))
    assert resolved[0] != resolved[1]
    assert all((path / "model.json").is_file() for path in resolved)


def test_lifecycle_on_embedded_default(
    yolox_package: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CVOPS_STATE_DIR", str(tmp_path / "state"))
    registry = ModelRegistry()
    assert registry.tracking_uri == f"sqlite:///{tmp_path / 'state' / 'mlflow' / 'mlflow.db'}"
    _exercise_lifecycle(registry, yolox_package, tmp_path)
    assert any((tmp_path / "state" / "mlflow" / "artifacts").rglob("model.onnx"))


def test_cli_flow_on_embedded_default(
    yolox_package: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cvops.cli.app import main

    monkeypatch.setenv("CVOPS_STATE_DIR", str(tmp_path / "state"))

    def cvops(*args: str) -> tuple[int, str, str]:
        code = main(["registry", *args])
        out, err = capsys.readouterr()
        return code, out, err

    register = (
        "register",
        str(yolox_package),
        "--name",
        "det",
        "--dataset-version",
        "ds-3",
        "--metric",
        "map50=0.5",
    )
    code, out, err = cvops(*register)
    assert (code, out.split(" (run ")[0]) == (0, "registered models:/det/1"), err
    assert cvops(*register)[0] == 0
    assert cvops("promote", "det", "1", "--why", "first", "--who", "alice")[1] == "det@champion: - -> 1\n"
    assert cvops("promote", "det", "2", "--why", "better", "--evidence", "map50=0.52")[0] == 0
    code, out, _ = cvops("rollback", "det", "--why", "regression", "--who", "bob")
    assert (code, out) == (0, "det@champion: 2 -> 1 (rollback)\n")
    code, out, _ = cvops("history", "det", "--json")
    events = [json.loads(line) for line in out.splitlines()]
    assert [(e["action"], e["to_version"], e["why"]) for e in events] == [
        ("promote", 1, "first"),
        ("promote", 2, "better"),
        ("rollback", 1, "regression"),
    ]
    assert events[1]["evidence"] == {"map50": 0.52}
    code, out, _ = cvops("show", "det", "--json")
    shown = json.loads(out)
    assert (shown["version"], shown["aliases"], shown["lineage"]["dataset_version"]) == (
        1,
        ["champion"],
        "ds-3",
    )
    code, out, _ = cvops("card", "det", "--version", "2", "--out", str(tmp_path / "card"))
    assert code == 0
    assert "ds-3" in (tmp_path / "card" / "model_card.md").read_text()

    code, out, err = cvops("show", "det", "--version", "9")
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: ")
    assert "det" in err
    code, _, err = cvops("promote", "det", "1", "--why", "again")
    assert (code, err.strip()) == (2, "error: det: champion already points to version 1")


def test_unreachable_server_fails_within_bounded_time(yolox_package: Path, tmp_path: Path) -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    breaker = CircuitBreaker("registry", failure_threshold=1, reset_timeout_s=60)
    registry = ModelRegistry(uri, state_dir=tmp_path, retry=FAST_RETRY, breaker=breaker)
    # MLflow's REST client loads its plugins on first use (feast registers one: seconds); not
    # part of the retry bound.
    import mlflow.tracking.request_header.registry  # noqa: F401

    started = time.monotonic()
    with pytest.raises(RegistryUnavailableError, match=f"{uri} unreachable.*failed 3 time") as caught:
        registry.register(yolox_package, "never")
    assert time.monotonic() - started < FAST_RETRY.deadline_s + 5
    assert "Connection refused" in str(caught.value)
    assert not getattr(caught.value, "__notes__", None)  # nothing was created, nothing left behind
    assert not list(tmp_path.iterdir())  # no database, no staging folder

    started = time.monotonic()
    with pytest.raises(RegistryUnavailableError, match="circuit open"):
        registry.show("never", "champion")
    assert time.monotonic() - started < 0.5


def test_lifecycle_against_mlflow_server(mlflow_server: str, yolox_package: Path, tmp_path: Path) -> None:
    registry = ModelRegistry(mlflow_server, state_dir=tmp_path / "state", retry=FAST_RETRY)
    _exercise_lifecycle(registry, yolox_package, tmp_path)
    resolved = resolve_model_uri("models:/yolox-nano@champion", mlflow_server, tmp_path / "other-cache")
    assert (resolved / "model.json").is_file()


def _client(registry: ModelRegistry) -> Any:
    return registry._client


def test_server_gone_mid_registration_retries_then_undoes(
    mlflow_server: str, yolox_package: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server stops answering after the run and artifacts exist: retried, then all removed."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    calls: list[str] = []

    def refused(*args: object, **kwargs: object) -> None:
        calls.append("create_model_version")
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except ConnectionRefusedError as error:  # how MLflow wraps requests' wrapper of this
            raise MlflowException(f"API request to {mlflow_server} failed with exception {error}") from error

    monkeypatch.setattr(MlflowClient, "create_model_version", refused)
    registry = ModelRegistry(mlflow_server, state_dir=tmp_path, retry=FAST_RETRY)
    with pytest.raises(RegistryUnavailableError, match="create model version failed 3 time"):
        registry.register(yolox_package, "gone-midway")
    assert len(calls) == FAST_RETRY.attempts
    monkeypatch.undo()
    _assert_nothing_registered(registry, "gone-midway")


def test_injected_failure_mid_registration_leaves_no_version(
    mlflow_server: str, yolox_package: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    registry = ModelRegistry(mlflow_server, state_dir=tmp_path, retry=FAST_RETRY)
    kept = registry.register(yolox_package, "injected")

    def fail(*args: object, **kwargs: object) -> None:
        raise MlflowException("injected failure")

    # The last step: the version exists, its artifacts are uploaded, only the completion tag fails.
    monkeypatch.setattr(MlflowClient, "set_model_version_tag", fail)
    with pytest.raises(RegistryError, match="injected failure"):
        registry.register(yolox_package, "injected")
    with pytest.raises(RegistryError, match="injected failure"):
        registry.register(yolox_package, "injected-new")
    monkeypatch.undo()

    versions = _client(registry).search_model_versions("name = 'injected'")
    assert [int(v.version) for v in versions] == [kept.version]
    _assert_nothing_registered(registry, "injected-new")
    with pytest.raises(RegistryNotFoundError):
        registry.show("injected", 2)


def _assert_nothing_registered(registry: ModelRegistry, name: str) -> None:
    from mlflow.entities import ViewType

    client = _client(registry)
    with pytest.raises(RegistryNotFoundError):
        registry.show(name, 1)
    assert client.search_registered_models(f"name = '{name}'") == []
    experiment = client.get_experiment_by_name(registry.experiment)
    runs = client.search_runs(
        [experiment.experiment_id], f"tags.`cvops.model_name` = '{name}'", run_view_type=ViewType.ALL
    )
    assert runs, "the registration run was created"
    assert {run.info.lifecycle_stage for run in runs} == {"deleted"}
