"""Import frames into Label Studio with the model's boxes as pre-annotations (predictions).

Each frame becomes a task whose ``data.image`` is ``/data/local-files/?d=<path relative to the
document root>``; a frame outside the document root is first copied into
``<document root>/cvops-frames/<sha256 prefix>/<name>`` (so is one lying directly in the root:
Label Studio connects only folders below the root). The model's boxes become one
prediction per task (``model_version`` set, a score per region and per prediction), so
annotators correct boxes instead of drawing them. Pushing the same image twice (same bytes) to
a project imports it once: each task keeps the image's SHA-256 in ``data.cvops_image_sha256``.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cvops.annotation.client import LabelStudioClient
from cvops.annotation.connection import LabelStudioConnection
from cvops.annotation.project import FROM_NAME, IMAGE_KEY, TO_NAME, ensure_local_storage, ensure_project
from cvops.contracts.detections import DetectionRecord, detection_records
from cvops.data.formats import read_image_size
from cvops.data.versions import file_sha256
from cvops.detection.types import Detections
from cvops.errors import InvalidInputError

logger = logging.getLogger(__name__)

SHA256_KEY = "cvops_image_sha256"
"""The key of ``task.data`` holding the SHA-256 of the image file."""

SERVED_KEY = "cvops_served_path"
"""The key of ``task.data`` holding the image's path relative to the document root."""

COPY_FOLDER = "cvops-frames"
"""Folder under the document root receiving frames that lie outside it."""

_IMPORT_BATCH = 200

Frame = tuple[Path, Detections | Sequence[DetectionRecord]]
"""One frame to label: the image file and the model's boxes on it (pixels of that image)."""


@dataclass(frozen=True, slots=True)
class PushResult:
    """What :func:`push_frames` did.

    Attributes:
        project_id: The project's id.
        is_new_project: Whether the project was created by this call.
        imported_count: Tasks imported now.
        skipped_count: Frames already in the project (same image bytes), not imported again.
        prediction_count: Boxes imported as pre-annotations.
        duration_s: Wall time of the call.
    """

    project_id: int
    is_new_project: bool
    imported_count: int
    skipped_count: int
    prediction_count: int
    duration_s: float


def push_frames(
    connection: LabelStudioConnection,
    project: str,
    class_names: Sequence[str],
    frames: Iterable[Frame],
    model_version: str,
) -> PushResult:
    """Create or reuse a project and import frames with the model's detections as predictions.

    Args:
        connection: The server (URL, token, document root).
        project: Project title (created with a RectangleLabels config of ``class_names``).
        class_names: The model's class names, in class-id order.
        frames: ``(image path, detections)`` pairs; detections as :class:`Detections` or
            :class:`~cvops.contracts.detections.DetectionRecord` lists, boxes in pixels.
        model_version: The model that made the detections (stored on every prediction).

    Raises:
        InvalidInputError: For bad class names, an empty model version, a detection whose class
            is not in ``class_names``.
        ImageReadError: When an image cannot be read.
        AnnotationUnavailableError: When the server does not answer (after retries).
        AnnotationServerError: When it refuses a request (e.g. a project with other labels).
    """
    started = time.monotonic()
    if not model_version.strip():
        raise InvalidInputError("model_version: expected a non-empty model name/version, got ''")
    root = Path(connection.document_root).resolve()
    with connection.client() as client:
        ref = ensure_project(client, project, class_names)
        known = {t["data"].get(SHA256_KEY) for t in list_tasks(client, ref.project_id)}
        tasks: list[dict[str, Any]] = []
        skipped = 0
        for image, detections in frames:
            sha256 = file_sha256(Path(image))
            if sha256 in known:
                skipped += 1
                continue
            known.add(sha256)
            tasks.append(_task(Path(image), sha256, detections, ref.class_names, model_version, root))
        # Label Studio serves a local file only under a storage folder connected to the project,
        # and refuses the document root itself: connect each top folder the frames lie in.
        for top in sorted({t["data"][SERVED_KEY].split("/", 1)[0] for t in tasks}):
            ensure_local_storage(client, ref.project_id, root / top)
        for start in range(0, len(tasks), _IMPORT_BATCH):
            client.post(f"/api/projects/{ref.project_id}/import", tasks[start : start + _IMPORT_BATCH])
        # Predictions of this model version are shown to annotators as pre-annotations.
        client.patch(f"/api/projects/{ref.project_id}/", {"model_version": model_version})
    predicted = sum(len(t["predictions"][0]["result"]) for t in tasks)
    logger.info("label studio project %s: imported %d tasks, skipped %d", ref.project_id, len(tasks), skipped)
    return PushResult(ref.project_id, ref.is_new, len(tasks), skipped, predicted, time.monotonic() - started)


def list_tasks(client: LabelStudioClient, project_id: int) -> list[dict[str, Any]]:
    """Return every task of a project (data and ids; annotations are read by the export)."""
    return client.get_pages("/api/tasks/", "tasks", {"project": project_id})


def _task(
    image: Path,
    sha256: str,
    detections: Detections | Sequence[DetectionRecord],
    class_names: tuple[str, ...],
    model_version: str,
    root: Path,
) -> dict[str, Any]:
    width, height = read_image_size(image, str(image))
    records = detection_records(detections) if isinstance(detections, Detections) else list(detections)
    results = [_prediction_region(r, i, width, height, class_names, image) for i, r in enumerate(records)]
    score = min((r.score for r in records), default=1.0)
    relative = _served_path(image, sha256, root)
    return {
        "data": {
            IMAGE_KEY: f"/data/local-files/?d={quote(relative)}",
            SHA256_KEY: sha256,
            SERVED_KEY: relative,
            "cvops_source": str(image),
        },
        "predictions": [{"model_version": model_version, "score": score, "result": results}],
    }


def _prediction_region(
    record: DetectionRecord, index: int, width: int, height: int, class_names: tuple[str, ...], image: Path
) -> dict[str, Any]:
    label = record.class_name
    if label not in class_names:
        raise InvalidInputError(
            f"{image}: detection {index}: class {record.class_name!r} is not in the class names "
            f"{list(class_names)[:20]}"
        )
    x1, y1, x2, y2 = (
        min(max(record.xyxy[0], 0.0), width),
        min(max(record.xyxy[1], 0.0), height),
        min(max(record.xyxy[2], 0.0), width),
        min(max(record.xyxy[3], 0.0), height),
    )
    return {
        "id": f"p{index}",
        "from_name": FROM_NAME,
        "to_name": TO_NAME,
        "type": "rectanglelabels",
        "original_width": width,
        "original_height": height,
        "image_rotation": 0,
        "score": record.score,
        "value": box_percent((x1, y1, x2, y2), width, height) | {"rectanglelabels": [label]},
    }


def box_percent(xyxy: tuple[float, float, float, float], width: int, height: int) -> dict[str, float]:
    """Return a pixel box as Label Studio's ``x, y, width, height`` in percent of the image."""
    x1, y1, x2, y2 = xyxy
    return {
        "x": x1 / width * 100,
        "y": y1 / height * 100,
        "width": (x2 - x1) / width * 100,
        "height": (y2 - y1) / height * 100,
        "rotation": 0,
    }


def _served_path(image: Path, sha256: str, root: Path) -> str:
    """Return the image's path relative to the document root, copying it there if outside."""
    absolute = image.resolve()
    try:
        relative = absolute.relative_to(root).as_posix()
    except ValueError:
        relative = ""
    if "/" in relative:  # in a folder below the root, which a storage can connect
        return relative
    target = root / COPY_FOLDER / sha256[:16] / image.name
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        shutil.copyfile(absolute, partial)
        partial.replace(target)
    return target.relative_to(root).as_posix()
