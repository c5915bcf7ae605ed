"""Child server processes: started on free loopback ports, awaited, never outliving their parent."""

from __future__ import annotations

import ctypes
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from cvops.errors import CvopsError


class ServerStartError(CvopsError, RuntimeError):
    """A server process exited or did not become ready in time."""


_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask Linux to send SIGTERM to this process when its parent dies (a ``preexec_fn``).

    Servers started by ``cvops serve`` or the canary router stop with them, even when the parent
    is killed before its cleanup runs. Elsewhere than Linux this does nothing.
    """
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_ready(
    process: subprocess.Popen[bytes], ready_url: str, log: Path, timeout_s: float = 120.0
) -> None:
    """Poll ``ready_url`` until it answers 200.

    Raises:
        ServerStartError: With the end of ``log`` when the process exits first, or when it is
            not ready after ``timeout_s`` (the process is then killed).
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerStartError(f"{process.args!r} exited with {process.returncode}: {_tail(log)}")
        try:
            with urllib.request.urlopen(ready_url, timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.3)
    process.kill()
    raise ServerStartError(f"{ready_url} not ready after {timeout_s:.0f} s: {_tail(log)}")


def _tail(log: Path, chars: int = 2000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else "(no log)"
