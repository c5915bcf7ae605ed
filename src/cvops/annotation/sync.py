"""Pull completed Label Studio annotations into a new content-addressed dataset version.

Each sync reads the project's full JSON export (a snapshot of every task and annotation), keeps
each task's latest non-cancelled annotation (:func:`~cvops.data.label_studio.read_label_studio`:
an edited annotation counts as it is now; a deleted annotation or task is simply absent), and
hashes the result into a dataset version (:mod:`cvops.data.versions`). The layout under
``out_dir``::

    <version id>/        data.yaml + images/ + labels/ (YOLO) or annotations_coco_*.json,
                         manifest.json (the version manifest), export.json (the snapshot)
    sync_state.json      the cursor: last version id, project, counts (written last)

Idempotent: the same annotations hash to the same version id, so a re-run adds nothing.
Resumable: a version is written into ``.partial-*`` and renamed into place in one step, and the
cursor is replaced atomically only after that, so a sync killed at any point leaves either no
version or a complete one; the next run removes leftovers and finishes the work. A lock file
serializes syncs into the same ``out_dir``.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cvops.annotation.client import LabelStudioClient
from cvops.annotation.connection import LabelStudioConnection
from cvops.annotation.project import IMAGE_KEY, ProjectRef, find_project
from cvops.data.formats import DetectionDataset, LabeledImage, write_coco, write_yolo
from cvops.data.label_studio import read_label_studio
from cvops.data.versions import dataset_manifest, read_manifest, split_dataset, write_manifest
from cvops.errors import AnnotationServerError, AnnotationTimeoutError, DatasetError, InvalidInputError

logger = logging.getLogger(__name__)

STATE_FILE = "sync_state.json"
MANIFEST_FILE = "manifest.json"
EXPORT_FILE = "export.json"
_PARTIAL_PREFIX = ".partial-"

DatasetFormat = Literal["yolo", "coco"]


class SyncState(BaseModel):
    """The sync cursor of one output folder (``sync_state.json``).

    Attributes:
        project_id: The Label Studio project synced.
        version_id: The latest version written.
        synced_at: When it was written (ISO 8601, UTC).
        completed_task_count: Tasks with a completed annotation in that version.
        box_count: Boxes in that version.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    project_id: int = Field(ge=1)
    version_id: str
    synced_at: str
    completed_task_count: int = Field(ge=0)
    box_count: int = Field(ge=0)


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What :func:`sync_annotations` produced.

    Attributes:
        version_id: The dataset version of the project's completed annotations now.
        version_dir: Its folder (``data.yaml`` or COCO files, ``manifest.json``).
        is_new: Whether this call wrote the version (False: it existed already, nothing added).
        previous_version_id: The version the cursor named before this call (None at the first).
        image_count: Images in the version (tasks with a completed annotation).
        box_count: Boxes in the version.
        duration_s: Wall time of the call, waiting included.
    """

    version_id: str
    version_dir: Path
    is_new: bool
    previous_version_id: str | None
    image_count: int
    box_count: int
    duration_s: float


def sync_annotations(
    connection: LabelStudioConnection,
    project: str,
    out_dir: Path,
    dataset_format: DatasetFormat = "yolo",
    split: str = "train",
    split_fractions: Mapping[str, float] | None = None,
    min_completed: int = 0,
    timeout_s: float = 0.0,
    poll_interval_s: float = 2.0,
) -> SyncResult:
    """Write the project's completed annotations as a dataset version under ``out_dir``.

    Args:
        connection: The server; its document root holds the task images.
        project: Project title.
        out_dir: Folder of the versions and the sync cursor.
        dataset_format: ``yolo`` (``data.yaml``) or ``coco`` (one JSON file per split).
        split: Split of every image, unless ``split_fractions`` is given.
        split_fractions: Re-split by content hash (``{"train": 0.8, "val": 0.2}``).
        min_completed: Wait until at least this many tasks have an annotation.
        timeout_s: Longest wait for ``min_completed``.
        poll_interval_s: Seconds between two looks at the count while waiting.

    Raises:
        AnnotationServerError: When the project does not exist or its config has no labels.
        AnnotationTimeoutError: When fewer than ``min_completed`` tasks were annotated in time.
        AnnotationUnavailableError: When the server does not answer (after retries).
        DatasetError: When an annotation is invalid (label not in the config, image missing).
    """
    started = time.monotonic()
    if dataset_format not in ("yolo", "coco"):
        raise InvalidInputError(f"dataset format: expected 'yolo' or 'coco', got {dataset_format!r}")
    if min_completed < 0 or timeout_s < 0 or poll_interval_s <= 0:
        got = f"min_completed={min_completed}, timeout_s={timeout_s}, poll_interval_s={poll_interval_s}"
        raise InvalidInputError(
            f"expected min_completed >= 0, timeout_s >= 0, poll_interval_s > 0, got {got}"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    with connection.client() as client:
        ref = _existing_project(client, project)
        if min_completed:
            wait_for_annotations(client, ref, min_completed, timeout_s, poll_interval_s)
        tasks = client.get(
            f"/api/projects/{ref.project_id}/export", {"exportType": "JSON", "download_all_tasks": "true"}
        )
    if not isinstance(tasks, list):
        raise AnnotationServerError(f"label studio project {project!r}: export: expected a list of tasks")
    completed = sorted((t for t in tasks if _is_completed(t)), key=lambda t: int(t["id"]))
    with _locked(out_dir):
        previous = read_sync_state(out_dir)
        version_dir, is_new, dataset = _write_version(
            completed, connection.document_root, ref, out_dir, dataset_format, split, split_fractions
        )
        state = SyncState(
            project_id=ref.project_id,
            version_id=version_dir.name,
            synced_at=datetime.now(UTC).isoformat(timespec="seconds"),
            completed_task_count=len(completed),
            box_count=dataset.box_count,
        )
        _write_json_atomic(out_dir / STATE_FILE, state.model_dump_json(indent=2))
    logger.info("synced project %s into %s (new: %s)", ref.project_id, version_dir, is_new)
    return SyncResult(
        version_id=version_dir.name,
        version_dir=version_dir,
        is_new=is_new,
        previous_version_id=previous.version_id if previous else None,
        image_count=len(dataset),
        box_count=dataset.box_count,
        duration_s=time.monotonic() - started,
    )


def wait_for_annotations(
    client: LabelStudioClient, ref: ProjectRef, min_completed: int, timeout_s: float, poll_interval_s: float
) -> int:
    """Poll the project until ``min_completed`` tasks have an annotation; return the count.

    Raises:
        AnnotationTimeoutError: When the count stays below ``min_completed`` for ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        detail = client.get(f"/api/projects/{ref.project_id}/")
        count = int(detail.get("num_tasks_with_annotations") or 0)
        if count >= min_completed:
            return count
        if time.monotonic() >= deadline:
            raise AnnotationTimeoutError(
                f"label studio project {ref.title!r}: expected >= {min_completed} annotated tasks "
                f"within {timeout_s:.0f} s, got {count}"
            )
        time.sleep(min(poll_interval_s, max(deadline - time.monotonic(), 0.0)))


def read_sync_state(out_dir: Path) -> SyncState | None:
    """Return the sync cursor of ``out_dir``, or None before the first sync.

    Raises:
        DatasetError: When the file is not a valid cursor.
    """
    path = out_dir / STATE_FILE
    try:
        return SyncState.model_validate_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValidationError as error:
        raise DatasetError(f"{path}: not a valid sync state: {error.errors()[0]['msg']}") from error


def _existing_project(client: LabelStudioClient, title: str) -> ProjectRef:
    ref = find_project(client, title)
    if ref is None:
        raise AnnotationServerError(f"label studio: no project titled {title!r}; push frames to it first")
    if not ref.class_names:
        raise AnnotationServerError(f"label studio project {title!r}: its config has no RectangleLabels")
    return ref


def _is_completed(task: dict[str, Any]) -> bool:
    annotations = task.get("annotations") or []
    return any(isinstance(a, dict) and not a.get("was_cancelled") for a in annotations)


def _write_version(
    tasks: list[dict[str, Any]],
    document_root: Path,
    ref: ProjectRef,
    out_dir: Path,
    dataset_format: DatasetFormat,
    split: str,
    split_fractions: Mapping[str, float] | None,
) -> tuple[Path, bool, DetectionDataset]:
    """Write the version of these tasks unless it exists; return (folder, written now, dataset)."""
    for leftover in out_dir.glob(f"{_PARTIAL_PREFIX}*"):
        logger.info("removing %s left by an interrupted sync", leftover)
        shutil.rmtree(leftover)
    partial = Path(tempfile.mkdtemp(prefix=_PARTIAL_PREFIX, dir=out_dir))
    try:
        export_file = partial / EXPORT_FILE
        export_file.write_text(json.dumps(tasks, indent=1, sort_keys=True), encoding="utf-8")
        dataset = read_label_studio(export_file, document_root, ref.class_names, split, IMAGE_KEY)
        if split_fractions is not None:
            dataset = split_dataset(dataset, split_fractions)
        version_id = dataset_manifest(dataset).version_id
        final = out_dir / version_id
        if _is_complete_version(final, version_id):
            shutil.rmtree(partial)
            return final, False, dataset
        if final.exists():  # a damaged folder: replace it
            shutil.rmtree(final)
        placed = _write_files(dataset, partial, final, dataset_format)
        write_manifest(dataset_manifest(placed, partial), partial / MANIFEST_FILE)
        os.rename(partial, final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return final, True, dataset


def _write_files(
    dataset: DetectionDataset, partial: Path, final: Path, dataset_format: DatasetFormat
) -> DetectionDataset:
    """Write the dataset files into ``partial`` and return the dataset pointing at its copies."""
    if dataset_format == "yolo":
        data_yaml = write_yolo(dataset, partial)
        doc = yaml.safe_load(data_yaml.read_text(encoding="utf-8"))
        doc["path"] = str(final.resolve())  # where the folder will be once renamed
        data_yaml.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    else:
        write_coco(dataset, partial)
    items = tuple(
        LabeledImage(
            partial / "images" / item.split / item.image_path.name,
            item.width,
            item.height,
            item.xyxy,
            item.class_ids,
            item.split,
        )
        for item in dataset.items
    )
    return DetectionDataset(dataset.class_names, items)


def _is_complete_version(folder: Path, version_id: str) -> bool:
    try:
        return read_manifest(folder / MANIFEST_FILE).version_id == version_id
    except (DatasetError, OSError):
        return False


def _write_json_atomic(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text + "\n", encoding="utf-8")
    os.replace(partial, path)


@contextmanager
def _locked(out_dir: Path) -> Iterator[None]:
    with (out_dir / ".sync.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
