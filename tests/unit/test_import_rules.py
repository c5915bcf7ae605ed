"""The dependency rule of STYLE.md: cvops' core never pulls in heavy or adapter libraries."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = ["torch", "ultralytics", "tensorrt", "kfp", "kserve", "fastapi", "feast", "mlflow"]


FORBIDDEN += ["evidently", "label_studio_sdk", "kubernetes", "selenium"]

# Imports every cvops module in turn in one fresh interpreter; after each, names the heavy
# libraries it pulled in (a module reached through another's import is charged to the first).
_PROBE = """
import importlib, json, pkgutil, sys
import cvops
forbidden = set(json.loads(sys.argv[1]))
offenders = {}
for info in pkgutil.walk_packages(cvops.__path__, "cvops."):
    if info.name.endswith("__main__"):
        continue  # runs the CLI
    before = forbidden & set(sys.modules)
    importlib.import_module(info.name)
    loaded = sorted((forbidden & set(sys.modules)) - before)
    if loaded:
        offenders[info.name] = loaded
        for name in loaded:
            forbidden.discard(name)
print(json.dumps(offenders))
"""


def test_importing_any_cvops_module_loads_no_heavy_library() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(FORBIDDEN)], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout) == {}, (
        f"modules importing heavy libraries at module level: {result.stdout}"
    )


def test_every_cvops_module_is_imported_by_the_probe() -> None:
    import pkgutil

    import cvops

    names = [info.name for info in pkgutil.walk_packages(cvops.__path__, "cvops.")]
    assert "cvops.cli.app" in names
    assert "cvops.loop.demo" in names
    assert len(names) > 100
