"""The serving image definition: linted, and free of the training stack."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT

HADOLINT = Path(sys.executable).parent / "hadolint"


def test_serving_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [str(HADOLINT), str(REPO_ROOT / "serving" / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_serving_image_installs_no_torch_and_only_pinned_versions() -> None:
    wanted = [
        line.strip().lower()
        for line in (REPO_ROOT / "requirements" / "serving.in").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    pinned = {
        line.split("==")[0].lower().replace("_", "-")
        for line in (REPO_ROOT / "requirements" / "lock.txt").read_text().splitlines()
        if "==" in line
    }
    assert not {"torch", "torchvision", "ultralytics"} & set(wanted)
    assert {name.replace("_", "-") for name in wanted} <= pinned
