"""The walkthrough notebook: committed without outputs, and executed top to bottom so it cannot rot.

The notebook runs in a real IPython kernel of this interpreter (a kernelspec written to tmp_path,
so no user-level Jupyter setup is assumed), in a scratch working folder, on a copy held in memory:
the committed file is never rewritten with outputs.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

from tests.conftest import FIXTURES_DIR, REPO_ROOT, fixture_path

NOTEBOOK = REPO_ROOT / "notebooks" / "walkthrough.ipynb"
KERNEL_NAME = "cvops-walkthrough"
# Generous per cell: the whole notebook takes ~1 minute on 2 loaded cores (the drift cell ~30 s).
CELL_TIMEOUT_S = 300
# Paths that would tie the notebook to one machine.
MACHINE_PATHS = ("/work/", "/tmp/", "/home/", "/root/")


def _code_cells(nb: Any) -> list[Any]:
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def _cell(nb: Any, cell_id: str) -> Any:
    matches = [cell for cell in nb.cells if cell.get("id") == cell_id]
    assert len(matches) == 1, f"expected one cell with id {cell_id!r}, got {len(matches)}"
    return matches[0]


def _stdout(cell: Any) -> str:
    return "".join(o.text for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")


def test_committed_notebook_is_valid_and_has_no_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code_cells = _code_cells(nb)
    assert len(code_cells) >= 8, "the walkthrough lost its steps"
    for cell in code_cells:
        assert cell.outputs == [], f"cell {cell.id}: committed with outputs; clear them before committing"
        assert cell.execution_count is None, f"cell {cell.id}: committed with an execution count"
        assert set(cell.metadata) <= {"tags"}, f"cell {cell.id}: unexpected metadata {dict(cell.metadata)}"
    assert nb.metadata.kernelspec.name == "python3"
    for cell in nb.cells:
        for path in MACHINE_PATHS:
            assert path not in cell.source, f"cell {cell.id}: machine-specific path {path!r} in the source"


@pytest.fixture
def kernel_manager(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[KernelManager]:
    """A kernel of this interpreter, with the fixtures folder and all Jupyter state in tmp_path."""
    from ipykernel.kernelspec import install

    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "jupyter-runtime"))  # connection files
    prefix = tmp_path / "jupyter"
    install(
        kernel_name=KERNEL_NAME,
        prefix=str(prefix),
        env={"CVOPS_FIXTURES": str(FIXTURES_DIR), "IPYTHONDIR": str(tmp_path / "ipython")},
    )
    specs = KernelSpecManager(kernel_dirs=[str(prefix / "share" / "jupyter" / "kernels")])
    assert specs.get_kernel_spec(KERNEL_NAME).argv[0] == sys.executable
    manager = KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=specs)
    yield manager
    if manager.has_kernel:  # the client stops it; this catches a failure before that
        manager.shutdown_kernel(now=True)


@pytest.mark.integration
def test_walkthrough_notebook_executes_on_the_fixtures(kernel_manager: KernelManager, tmp_path: Path) -> None:
    for needed in ("models/yolox_nano/yolox_nano.onnx", "images/bus.jpg", "mot17-mini/train/MOT17-04-FRCNN"):
        fixture_path(needed)
    committed = NOTEBOOK.read_bytes()
    nb = nbformat.reads(committed.decode("utf-8"), as_version=4)
    cwd = tmp_path / "cwd"
    cwd.mkdir()

    NotebookClient(
        nb,
        km=kernel_manager,
        timeout=CELL_TIMEOUT_S,
        allow_errors=False,  # any cell error raises CellExecutionError with the cell and traceback
        resources={"metadata": {"path": str(cwd)}},
    ).execute(cleanup_kc=True)  # stop the kernel when done (it is ours, not the client's)

    for cell in _code_cells(nb):
        assert cell.execution_count is not None, f"cell {cell.id} did not run"
        assert all(o.output_type != "error" for o in cell.outputs), f"cell {cell.id} failed"
    for plot in ("detect-plot", "track-plot"):
        assert any("image/png" in o.get("data", {}) for o in _cell(nb, plot).outputs), f"{plot}: no figure"
    card = "".join(o.get("data", {}).get("text/markdown", "") for o in _cell(nb, "card").outputs)
    assert "# Model card: yolox-nano version 1" in card

    summary = json.loads(_stdout(_cell(nb, "summary")).strip().splitlines()[-1])
    assert summary["detections"] >= 4  # bus.jpg: the bus and the people in front of it
    assert 0.3 < summary["hota"] <= 1.0  # ByteTrack on FRCNN public detections: ~0.67
    assert summary["mota"] > 0.0
    assert summary["champion_version"] == 1
    assert 0.0 < summary["drift_share"] <= 1.0
    assert summary["is_drifted"] is True  # frames 70 gray levels darker must raise the alarm
    assert summary["drift_events_on_champion"] == 1
    work_dir = Path(summary["work_dir"])
    assert summary["drift_html"], "no Evidently report"
    assert all(Path(p).is_relative_to(work_dir) and p.endswith(".html") for p in summary["drift_html"])
    # Everything went to the notebook's temporary folder, which its last cell deleted.
    assert not work_dir.exists()
    assert list(cwd.iterdir()) == []
    assert NOTEBOOK.read_bytes() == committed
