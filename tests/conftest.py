"""Shared test settings: the fixtures folder, library offline switches, small helpers."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from cvops.detection.types import Detections
from cvops.offline import configure_offline

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES_DIR = Path(os.environ.get("CVOPS_FIXTURES", str(REPO_ROOT.parent / "shared" / "fixtures")))
STATE_DIR = Path(os.environ.get("CVOPS_STATE_DIR", str(REPO_ROOT / ".cache" / "state")))

configure_offline(STATE_DIR)

_connect = socket.socket.connect


def _loopback_only_connect(self: socket.socket, address: object) -> None:
    """Fail any test that reaches beyond this machine: tests talk to loopback servers only."""
    if self.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
        host = str(address[0])
        if host != "localhost" and not _is_loopback_ip(host):
            raise ConnectionRefusedError(f"test tried to reach {host}: tests must stay on loopback")
    _connect(self, address)  # type: ignore[arg-type]


def _is_loopback_ip(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost
        return False


socket.socket.connect = _loopback_only_connect  # type: ignore[method-assign]


def fixture_path(relative: str) -> Path:
    """Return a path inside the real fixtures, or skip the test naming what is missing."""
    path = FIXTURES_DIR / relative
    if not path.exists():
        pytest.skip(f"fixture missing: {path} (set CVOPS_FIXTURES to the fixtures folder)")
    return path


def dets(
    xyxy: Sequence[Sequence[float]],
    scores: Sequence[float] | None = None,
    class_ids: Sequence[int] | None = None,
    vocabulary: tuple[str, ...] = ("a", "b", "c"),
) -> Detections:
    """Build Detections from inline lists: ``dets([[0, 0, 10, 10]])``."""
    n = len(xyxy)
    return Detections.from_arrays(
        np.asarray(xyxy, np.float32).reshape(n, 4),
        np.full(n, 0.9, np.float32) if scores is None else scores,
        np.zeros(n, np.int64) if class_ids is None else class_ids,
        vocabulary,
    )


class FakeClock:
    """A monotonic clock that only moves when a test sets ``now`` (seconds)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now
