from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cvops.processes import ServerStartError, free_port, wait_until_ready


def test_a_server_that_exits_is_reported_with_its_log(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-c", "import sys; print('port already in use'); sys.exit(3)"], stdout=sink
        )
    with pytest.raises(ServerStartError, match="exited with 3: port already in use"):
        wait_until_ready(process, f"http://127.0.0.1:{free_port()}/ready", log, timeout_s=30)


def test_a_server_that_never_answers_is_killed_after_the_timeout(tmp_path: Path) -> None:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    with pytest.raises(ServerStartError, match="not ready after 1 s"):
        wait_until_ready(process, f"http://127.0.0.1:{free_port()}/ready", tmp_path / "none.log", timeout_s=1)
    assert process.wait(timeout=10) != 0
