"""Labeling steps of the loop: push selected frames to Label Studio, (simulate labels), sync them back.

The server is the local one ``cvops labelstudio up`` started (its state under the cvops state
dir) unless a URL is given; then the token and the server's local-files document root are needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cvops.data.formats import read_dataset
from cvops.errors import AnnotationServerError, InvalidInputError
from cvops.loop.datasets import VersionedDataset, grow_dataset
from cvops.offline import default_state_dir

if TYPE_CHECKING:
    from cvops.annotation.connection import LabelStudioConnection
    from cvops.annotation.push import PushResult
    from cvops.annotation.simulate import SimulationResult

LABELSTUDIO_DIR = "labelstudio"
SYNC_DIR = "label-sync"


def connect(
    url: str = "", token: str = "", document_root: str = "", state_dir: Path | None = None
) -> LabelStudioConnection:
    """Return the Label Studio to use: ``url`` with ``token``, else the local server of the state dir.

    Raises:
        InvalidInputError: A URL without token or document root.
        AnnotationServerError: No URL and no local server was ever started.
    """
    from cvops.annotation.connection import LabelStudioConnection
    from cvops.annotation.server import read_server_info

    if url:
        if not token or not document_root:
            raise InvalidInputError("label studio: a URL needs its token and its local-files document root")
        return LabelStudioConnection(url, token, Path(document_root))
    folder = (state_dir or default_state_dir()) / LABELSTUDIO_DIR
    info = read_server_info(folder)
    if info is None:
        raise AnnotationServerError(f"{folder}: no Label Studio started here; run `cvops labelstudio up`")
    return LabelStudioConnection.from_server(info)


def push_selection(
    connection: LabelStudioConnection, selection_dir: Path, dataset_dir: Path, project: str
) -> PushResult:
    """Import the frames of ``selection_dir/selection.jsonl`` with their detections as pre-annotations.

    The project's labels are the class names of ``dataset_dir`` (the dataset being grown).
    """
    from cvops.active_learning.records import SelectedFrame
    from cvops.active_learning.selection import SELECTION_FILE
    from cvops.annotation.push import push_frames

    lines = (selection_dir / SELECTION_FILE).read_text(encoding="utf-8").splitlines()
    frames = [SelectedFrame.model_validate_json(line) for line in lines if line.strip()]
    class_names = read_dataset(dataset_dir).class_names
    models = {frame.predictions.model for frame in frames} or {"none"}
    pairs = [(Path(frame.path), frame.predictions.detections) for frame in frames]
    return push_frames(connection, project, class_names, pairs, ",".join(sorted(models)))


def annotate_from_truth(
    connection: LabelStudioConnection, project: str, ground_truth_uri: str
) -> SimulationResult | None:
    """Complete the project's open tasks with the simulated annotator; nothing when no ground truth is given.

    For demos and tests only: people label in production (an empty ``ground_truth_uri``).
    """
    if not ground_truth_uri:
        return None
    from cvops.annotation.simulate import simulate_annotations

    return simulate_annotations(connection, project, read_dataset(Path(ground_truth_uri)))


def sync_and_grow(
    connection: LabelStudioConnection,
    project: str,
    base_dir: Path,
    out_dir: Path,
    min_completed: int = 0,
    timeout_s: float = 0.0,
    state_dir: Path | None = None,
) -> VersionedDataset:
    """Sync the project's completed annotations into a new version and grow ``base_dir`` with them.

    The sync cursor and versions live under the state dir (``label-sync/<project>``), so reruns
    are idempotent and an interrupted sync resumes; the grown dataset is written to ``out_dir``.
    """
    from cvops.annotation.sync import sync_annotations

    sync_dir = (state_dir or default_state_dir()) / SYNC_DIR / project
    synced = sync_annotations(connection, project, sync_dir, min_completed=min_completed, timeout_s=timeout_s)
    return grow_dataset(base_dir, synced.version_dir, out_dir)
