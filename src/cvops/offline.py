"""The one place that switches every third-party library to offline, quiet operation.

Call :func:`configure_offline` before importing Ultralytics or MLflow (the CLI, the benchmark
scripts and the test suite do). It only sets variables that are not set already, so an operator
can still override any of them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

# Libraries read these at import time; values are strings as the environment requires.
OFFLINE_ENVIRONMENT: dict[str, str] = {
    "YOLO_OFFLINE": "1",  # Ultralytics: no hub, no asset or font downloads, no pip auto-update
    "YOLO_VERBOSE": "False",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "HF_HUB_OFFLINE": "1",
    "KMP_WARNINGS": "0",
    "NO_ALBUMENTATIONS_UPDATE": "1",  # albumentations: no version check against pypi.org at import
}


def default_state_dir() -> Path:
    """Return the folder for library state (``CVOPS_STATE_DIR``, else ``~/.cache/cvops``)."""
    return Path(os.environ.get("CVOPS_STATE_DIR", str(Path.home() / ".cache" / "cvops")))


def configure_offline(state_dir: Path) -> None:
    """Point library state at ``state_dir`` and set the offline switches of every library.

    Args:
        state_dir: A writable folder for library settings (Ultralytics' settings and font).
    """
    for key, value in OFFLINE_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    config_dir = Path(os.environ.setdefault("YOLO_CONFIG_DIR", str(state_dir / "ultralytics")))
    font = config_dir / "Ultralytics" / "Arial.ttf"
    if not font.exists():
        # Ultralytics downloads Arial.ttf to draw labels; any TTF serves, and matplotlib ships one.
        import matplotlib

        bundled = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        font.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(bundled, font)
