"""A local Label Studio server: started in its own venv on 127.0.0.1, found again by its state file.

:func:`start_server` writes ``<base_dir>/server.json`` (mode 0600): the URL, the PID and the
generated admin (email, password, API token). The admin and its token are created by Label
Studio itself on the first start (``LABEL_STUDIO_USERNAME`` / ``_PASSWORD`` / ``_USER_TOKEN``,
with legacy tokens enabled), and kept for later starts, so a restart (~2 s) reuses the data and
the token. A second :func:`start_server` while the server answers returns it unchanged.
:func:`stop_server` stops it by PID (after checking that the PID still is a Label Studio).

The child gets a clean environment: Label Studio also reads plain ``USERNAME``, ``PASSWORD``,
``PORT`` and ``HOST`` variables, which a shell or a CI runner may have set for other purposes.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cvops.errors import AnnotationServerError, InvalidInputError
from cvops.processes import ServerStartError, free_port, wait_until_ready

logger = logging.getLogger(__name__)

STATE_FILE = "server.json"
_CLEARED_VARIABLES = ("USERNAME", "PASSWORD", "PORT", "HOST", "DJANGO_SETTINGS_MODULE", "DATABASE_URL")


class ServerInfo(BaseModel):
    """What ``server.json`` holds: how to reach and stop a local Label Studio.

    Attributes:
        url: Base URL (``http://127.0.0.1:PORT``).
        port: TCP port on 127.0.0.1.
        pid: PID of the server process; None once stopped.
        email: The admin's login.
        password: The admin's password (for the web UI).
        token: The admin's API token (``Authorization: Token ...``).
        base_dir: Folder of this file, the server's data and its log.
        document_root: Folder served as ``/data/local-files/?d=<path relative to it>``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    port: int = Field(ge=1, le=65535)
    pid: int | None = Field(default=None, ge=1)
    email: str
    password: str
    token: str = Field(min_length=20)
    base_dir: str
    document_root: str

    @property
    def log_file(self) -> Path:
        """Return the server's log (stdout and stderr)."""
        return Path(self.base_dir) / "server.log"


def read_server_info(base_dir: Path) -> ServerInfo | None:
    """Return the state of the server of ``base_dir``, or None when it was never started.

    Raises:
        AnnotationServerError: When the state file is not valid.
    """
    path = base_dir / STATE_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return ServerInfo.model_validate_json(text)
    except ValidationError as error:
        raise AnnotationServerError(
            f"{path}: not a valid server state file: {error.errors()[0]['msg']}"
        ) from error


def write_server_info(info: ServerInfo) -> None:
    """Write the state file atomically, readable by its owner only (it holds the password)."""
    path = Path(info.base_dir) / STATE_FILE
    partial = path.with_name(f".{path.name}.partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
        stream.write(info.model_dump_json(indent=2) + "\n")
    os.chmod(partial, 0o600)
    os.replace(partial, path)


def is_running(info: ServerInfo) -> bool:
    """Whether the recorded PID is a live Label Studio process and its URL answers."""
    return info.pid is not None and _is_label_studio(info.pid) and _answers(f"{info.url}/health")


def start_server(
    venv: Path,
    base_dir: Path,
    document_root: Path | None = None,
    port: int | None = None,
    timeout_s: float = 180.0,
) -> ServerInfo:
    """Start Label Studio on 127.0.0.1 (or return the one already running for ``base_dir``).

    Args:
        venv: The virtual environment holding the server (``make labelstudio``: ``.venv-labelstudio``).
        base_dir: Folder for the state file, the server's data (sqlite, uploads) and log.
        document_root: Folder whose files Label Studio may serve (local-files storage);
            ``<base_dir>/files`` by default. Fixed at the first start.
        port: TCP port; the previous one if free, else a free one, when None.
        timeout_s: How long to wait for the server to answer (the first start migrates its
            database, ~20 s on 2 cores).

    Raises:
        AnnotationServerError: When the venv has no ``label-studio``, or the document root
            differs from the one the server was first started with.
        ServerStartError: When the server exits or does not answer in time (with its log's end).
    """
    executable = venv.resolve() / "bin" / "label-studio"
    if not executable.is_file():
        raise AnnotationServerError(
            f"{executable}: label-studio is not installed; run `make labelstudio` (its own venv, ~1 GB)"
        )
    base_dir = base_dir.resolve()
    base_dir.mkdir(parents=True, exist_ok=True)
    info = read_server_info(base_dir)
    if info is not None and info.pid is not None and _is_label_studio(info.pid):
        # Never a second server on the same data: wait for this one (it may be starting).
        _wait_for_running(info, timeout_s)
        logger.info("label studio already running at %s (pid %s)", info.url, info.pid)
        return info
    root = (document_root or (Path(info.document_root) if info else base_dir / "files")).resolve()
    if info is not None and str(root) != info.document_root:
        raise AnnotationServerError(
            f"label studio in {base_dir}: document root: expected {info.document_root} (fixed at the "
            f"first start), got {root}"
        )
    root.mkdir(parents=True, exist_ok=True)
    if info is None:
        info = ServerInfo(
            url="http://127.0.0.1:0",
            port=1,
            email="admin@cvops.local",
            password=secrets.token_urlsafe(18),
            token=secrets.token_hex(20),
            base_dir=str(base_dir),
            document_root=str(root),
        )
    chosen = port or (info.port if info.port > 1 and _is_free(info.port) else free_port())
    info = info.model_copy(update={"port": chosen, "url": f"http://127.0.0.1:{chosen}", "pid": None})
    process = _spawn(executable, info)
    info = info.model_copy(update={"pid": process.pid})
    write_server_info(info)  # before waiting: `down` can stop a server that hangs at start
    try:
        wait_until_ready(process, f"{info.url}/health", info.log_file, timeout_s)
    except ServerStartError:
        _terminate(process.pid, 10.0)
        write_server_info(info.model_copy(update={"pid": None}))
        raise
    return info


def _wait_for_running(info: ServerInfo, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not _answers(f"{info.url}/health"):
        if time.monotonic() >= deadline or info.pid is None or not _is_label_studio(info.pid):
            raise ServerStartError(
                f"label studio pid {info.pid} runs but {info.url} does not answer after {timeout_s:.0f} s; "
                f"stop it (`cvops labelstudio down`) and see {info.log_file}"
            )
        time.sleep(0.5)


def _spawn(executable: Path, info: ServerInfo) -> subprocess.Popen[bytes]:
    data_dir = Path(info.base_dir) / "data"
    env = {key: value for key, value in os.environ.items() if key not in _CLEARED_VARIABLES}
    env.update(
        {
            "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
            "LABEL_STUDIO_USERNAME": info.email,
            "LABEL_STUDIO_PASSWORD": info.password,
            "LABEL_STUDIO_USER_TOKEN": info.token,
            "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
            "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": info.document_root,
            "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
            "LATEST_VERSION_CHECK": "false",
            "COLLECT_ANALYTICS": "false",
            "SENTRY_DSN": "",
            "FRONTEND_SENTRY_DSN": "",
            "PYTHONUNBUFFERED": "1",
        }
    )
    command = [
        str(executable),
        "start",
        "--no-browser",
        "--internal-host",
        "127.0.0.1",
        "--port",
        str(info.port),
        "--data-dir",
        str(data_dir),
        "--enable-legacy-api-token",
    ]
    with info.log_file.open("ab") as log:
        # Its own session: the server outlives `cvops labelstudio up`; `down` stops the group.
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=info.base_dir,
            start_new_session=True,
        )


def stop_server(base_dir: Path, timeout_s: float = 15.0) -> ServerInfo | None:
    """Stop the server of ``base_dir`` by its PID; return its state (None if never started).

    Sends SIGTERM to its process group, then SIGKILL after ``timeout_s``. Does nothing when the
    recorded PID is gone or no longer a Label Studio (the PID was reused).
    """
    base_dir = base_dir.resolve()
    info = read_server_info(base_dir)
    if info is None:
        return None
    if info.pid is not None and _is_label_studio(info.pid):
        _terminate(info.pid, timeout_s)
    stopped = info.model_copy(update={"pid": None})
    write_server_info(stopped)
    return stopped


def _terminate(pid: int, timeout_s: float) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        except PermissionError as error:
            raise AnnotationServerError(f"label studio pid {pid}: not allowed to stop it: {error}") from error
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not _is_alive(pid):
                return
            time.sleep(0.1)


def _is_alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie (reaped here when it is our child)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError, ProcessLookupError):
        return False
    return state != "Z"


def _is_label_studio(pid: int) -> bool:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    return b"label-studio" in command and _is_alive(pid)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def _is_free(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def check_port(port: int | None) -> int | None:
    """Return ``port`` if it is None or a valid TCP port.

    Raises:
        InvalidInputError: For a port outside 1..65535.
    """
    if port is not None and not 1 <= port <= 65535:
        raise InvalidInputError(f"port: expected 1..65535, got {port}")
    return port
