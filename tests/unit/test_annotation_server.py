"""The Label Studio server's state file and guards, without starting a server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cvops.annotation.server import ServerInfo, read_server_info, start_server, stop_server, write_server_info
from cvops.errors import AnnotationServerError


def _info(base_dir: Path, pid: int | None) -> ServerInfo:
    return ServerInfo(
        url="http://127.0.0.1:8080",
        port=8080,
        pid=pid,
        email="admin@cvops.local",
        password="pw",
        token="t" * 40,
        base_dir=str(base_dir),
        document_root=str(base_dir / "files"),
    )


def test_state_file_round_trips_and_is_private(tmp_path: Path) -> None:
    assert read_server_info(tmp_path) is None
    write_server_info(_info(tmp_path, 123))
    assert read_server_info(tmp_path) == _info(tmp_path, 123)
    assert (tmp_path / "server.json").stat().st_mode & 0o777 == 0o600


def test_a_damaged_state_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "server.json").write_text('{"url": 1}')
    with pytest.raises(AnnotationServerError, match="not a valid server state file"):
        read_server_info(tmp_path)


def test_start_without_the_server_venv_says_how_to_install_it(tmp_path: Path) -> None:
    with pytest.raises(AnnotationServerError, match=r"label-studio is not installed; run `make labelstudio`"):
        start_server(tmp_path / "no-venv", tmp_path / "ls")


def test_stop_never_kills_a_pid_that_is_not_label_studio(tmp_path: Path) -> None:
    assert stop_server(tmp_path) is None
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        write_server_info(_info(tmp_path, other.pid))  # a stale state file whose PID was reused
        stopped = stop_server(tmp_path)
        assert stopped is not None
        assert stopped.pid is None
        assert other.poll() is None  # still running
    finally:
        other.kill()
        other.wait()
