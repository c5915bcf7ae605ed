"""Local deployments on 127.0.0.1: the canary router or a single model server, and their state file.

The processes are started in their own session so that they outlive the command that started
them (``cvops rollout deploy`` returns, the canary keeps serving); the state file records their
PID, port and URL so a later call can update or stop them. A PID is only signalled when its
command line still names our server (a recycled PID of another program is left alone).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cvops.errors import RolloutError
from cvops.processes import ServerStartError, wait_until_ready

MODEL_NAME = "detector"  # the name clients call, the same for both variants (serving/router.py)
_SERVER_MODULES = ("serving.router", "serving")


class CanaryDeployment(BaseModel):
    """Where a model's rollout is deployed; the content of its state file.

    Attributes:
        model_name: Registered model name.
        target: ``local`` (processes on 127.0.0.1) or ``cluster`` (a KServe InferenceService).
        mode: ``canary`` (champion and challenger) or ``single`` (the champion only).
        canary_percent: Share of traffic sent to the challenger (0 in single mode).
        shadow_percent: Share of champion traffic mirrored to the challenger.
        champion_version: Registry version serving as champion.
        challenger_version: Registry version serving as challenger (None in single mode).
        tracking_uri: The registry the versions come from.
        url: Where clients send requests (local: the router or server; cluster: None).
        port: Local port.
        pid: Local process id (the router, or the single server).
        log: Local process log file.
        manifest: The InferenceService applied (cluster target).
        updated_at: When this state was written (UTC, ISO 8601).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_name: str
    target: Literal["local", "cluster"]
    mode: Literal["canary", "single"]
    canary_percent: int = Field(ge=0, le=100)
    shadow_percent: int = Field(ge=0, le=100)
    champion_version: int
    challenger_version: int | None
    tracking_uri: str
    url: str | None = None
    port: int | None = None
    pid: int | None = None
    log: str | None = None
    manifest: dict[str, Any] | None = None
    updated_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat())


def state_file(state_dir: Path, model_name: str) -> Path:
    """Return the state file of a model's deployment: ``<state_dir>/rollout/<model_name>.json``."""
    return state_dir / "rollout" / f"{model_name}.json"


def read_state(state_dir: Path, model_name: str) -> CanaryDeployment | None:
    """Return the recorded deployment, or None when there is none.

    Raises:
        RolloutError: When the state file exists but is not a deployment record.
    """
    path = state_file(state_dir, model_name)
    if not path.is_file():
        return None
    try:
        return CanaryDeployment.model_validate_json(path.read_text(encoding="utf-8"))
    except (ValidationError, OSError) as error:
        raise RolloutError(f"{path}: not a deployment state file ({type(error).__name__})") from error


def write_state(state_dir: Path, deployment: CanaryDeployment) -> Path:
    """Write the state file atomically (a reader never sees half of it); return its path."""
    path = state_file(state_dir, deployment.model_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_suffix(".json.tmp")
    staging.write_text(json.dumps(deployment.model_dump(), indent=2), encoding="utf-8")
    os.replace(staging, path)
    return path


def remove_state(state_dir: Path, model_name: str) -> None:
    """Delete the state file if it exists."""
    state_file(state_dir, model_name).unlink(missing_ok=True)


def is_running(deployment: CanaryDeployment) -> bool:
    """Return whether the deployment's local process is alive and still our server."""
    return deployment.pid is not None and _is_our_server(deployment.pid)


def _is_our_server(pid: int) -> bool:
    """Whether ``pid`` runs ``python -m serving[.router]`` (Linux ``/proc``; a zombie has no command line)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    command = raw.decode(errors="replace").split("\0")
    return "-m" in command and any(module in command for module in _SERVER_MODULES)


def _reap_if_child(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):  # not our child: its parent (or init) reaps it
        os.waitpid(pid, os.WNOHANG)


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _reap_if_child(pid)
        if not _is_our_server(pid):
            return True
        time.sleep(0.1)
    return False


def stop_process(pid: int, timeout_s: float = 30.0) -> bool:
    """SIGTERM our server with this PID (the router stops its model servers), SIGKILL after ``timeout_s``.

    Returns:
        Whether a running server was stopped.
    """
    if not _is_our_server(pid):
        return False
    os.kill(pid, signal.SIGTERM)
    if not _wait_gone(pid, timeout_s):
        os.kill(pid, signal.SIGKILL)
        _wait_gone(pid, 10.0)
    return True


def start_router(
    champion_dir: Path,
    challenger_dir: Path,
    canary_percent: int,
    shadow_percent: int,
    port: int,
    log: Path,
    ready_timeout_s: float,
) -> int:
    """Start ``python -m serving.router`` on 127.0.0.1:``port`` and wait until it is ready; return its PID."""
    command = [
        sys.executable, "-m", "serving.router", "--champion", str(champion_dir),
        "--challenger", str(challenger_dir), "--canary-percent", str(canary_percent),
        "--shadow-percent", str(shadow_percent), "--host", "127.0.0.1", "--port", str(port),
        "--allow-anonymous",
    ]  # fmt: skip
    return _start(command, f"http://127.0.0.1:{port}", log, ready_timeout_s)


def start_server(package_dir: Path, port: int, log: Path, ready_timeout_s: float) -> int:
    """Start ``python -m serving`` for one package on 127.0.0.1:``port``; return its PID once ready."""
    command = [
        sys.executable, "-m", "serving", "--model-dir", str(package_dir), "--model-name", MODEL_NAME,
        "--host", "127.0.0.1", "--http-port", str(port), "--grpc-port", "0", "--allow-anonymous",
    ]  # fmt: skip
    return _start(command, f"http://127.0.0.1:{port}", log, ready_timeout_s)


def _start(command: list[str], url: str, log: Path, ready_timeout_s: float) -> int:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as sink:
        # A new session: the deployment outlives the command that started it, and a Ctrl-C in
        # that terminal does not reach it. `stop` ends it by PID.
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until_ready(process, f"{url}/v2/health/ready", log, timeout_s=ready_timeout_s)
    except ServerStartError as error:
        _reap(process)
        raise RolloutError(f"python -m {command[2]} did not become ready on {url}; its log: {log}") from error
    except BaseException:
        _reap(process)
        raise
    return process.pid


def _reap(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait()
