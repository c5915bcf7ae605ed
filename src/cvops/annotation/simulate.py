"""A simulated annotator: completes Label Studio tasks from known ground truth, for demos and tests.

It is not a person and says so: every region it writes carries
``meta.text = ["cvops SimulatedAnnotator"]`` (shown by Label Studio as the region's note), and
it goes through the same REST API a person's browser uses, so the loop push -> annotate -> sync
runs unattended. A task's image is matched to the ground truth by the SHA-256 of the file
(``data.cvops_image_sha256``, set by :func:`~cvops.annotation.push.push_frames`), so copies and
renames do not matter. Tasks that already have an annotation are left alone.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from cvops.annotation.client import LabelStudioClient
from cvops.annotation.connection import LabelStudioConnection
from cvops.annotation.project import FROM_NAME, TO_NAME, find_project
from cvops.annotation.push import SHA256_KEY, box_percent, list_tasks
from cvops.data.formats import DetectionDataset, LabeledImage
from cvops.data.versions import file_sha256
from cvops.errors import AnnotationServerError, InvalidInputError

logger = logging.getLogger(__name__)

SIMULATED_MARK = "cvops SimulatedAnnotator"
"""The note on every region the simulated annotator writes."""


@dataclass(frozen=True, slots=True)
class SimulationResult:
    """What :func:`simulate_annotations` did.

    Attributes:
        annotated_count: Tasks annotated now.
        already_annotated_count: Tasks that had an annotation already (left alone).
        unknown_count: Tasks whose image is not in the ground truth (left alone).
        box_count: Boxes written.
        duration_s: Wall time of the call.
    """

    annotated_count: int
    already_annotated_count: int
    unknown_count: int
    box_count: int
    duration_s: float


class SimulatedAnnotator:
    """Annotates tasks with the ground-truth boxes of their image."""

    def __init__(self, ground_truth: DetectionDataset) -> None:
        """Index the ground truth by image content.

        Args:
            ground_truth: Labeled images; their class names must match the project's labels.
        """
        self.ground_truth = ground_truth
        self._by_sha256 = {file_sha256(item.image_path): item for item in ground_truth.items}

    def annotate_project(
        self, client: LabelStudioClient, project: str, limit: int | None = None
    ) -> SimulationResult:
        """Annotate the project's unannotated tasks (at most ``limit``) from the ground truth.

        Raises:
            AnnotationServerError: When the project does not exist or its labels differ from
                the ground truth's class names.
        """
        started = time.monotonic()
        if limit is not None and limit < 0:
            raise InvalidInputError(f"limit: expected >= 0, got {limit}")
        ref = find_project(client, project)
        if ref is None:
            raise AnnotationServerError(f"label studio: no project titled {project!r}")
        expected = list(self.ground_truth.class_names)[:20]
        if ref.class_names != self.ground_truth.class_names:
            raise AnnotationServerError(
                f"label studio project {project!r}: expected labels {expected} (the ground truth's), "
                f"got {list(ref.class_names)[:20]}"
            )
        annotated = already = unknown = boxes = 0
        for task in list_tasks(client, ref.project_id):
            if limit is not None and annotated >= limit:
                break
            if task.get("total_annotations", 0) or task.get("cancelled_annotations", 0):
                already += 1
                continue
            item = self._by_sha256.get(task.get("data", {}).get(SHA256_KEY))
            if item is None:
                unknown += 1
                continue
            regions = self.regions(item)
            client.post(f"/api/tasks/{task['id']}/annotations/", {"result": regions, "lead_time": 0.0})
            annotated += 1
            boxes += len(regions)
        logger.info("simulated annotator: %d tasks annotated in project %s", annotated, ref.project_id)
        return SimulationResult(annotated, already, unknown, boxes, time.monotonic() - started)

    def regions(self, item: LabeledImage) -> list[dict[str, Any]]:
        """Return an image's ground-truth boxes as Label Studio rectangle regions, marked simulated."""
        names = self.ground_truth.class_names
        return [
            {
                "id": f"gt{index}",
                "from_name": FROM_NAME,
                "to_name": TO_NAME,
                "type": "rectanglelabels",
                "origin": "manual",
                "original_width": item.width,
                "original_height": item.height,
                "image_rotation": 0,
                "meta": {"text": [SIMULATED_MARK]},
                "value": box_percent((x1, y1, x2, y2), item.width, item.height)
                | {"rectanglelabels": [names[class_id]]},
            }
            for index, ((x1, y1, x2, y2), class_id) in enumerate(
                zip(item.xyxy.tolist(), item.class_ids.tolist(), strict=True)
            )
        ]


def simulate_annotations(
    connection: LabelStudioConnection, project: str, ground_truth: DetectionDataset, limit: int | None = None
) -> SimulationResult:
    """Complete a project's open tasks from ground truth with a :class:`SimulatedAnnotator`.

    Args:
        connection: The server.
        project: Project title.
        ground_truth: Labeled images (matched to tasks by image bytes).
        limit: Annotate at most this many tasks (all when None).

    Raises:
        AnnotationServerError: When the project does not exist or its labels differ.
        AnnotationUnavailableError: When the server does not answer (after retries).
    """
    with connection.client() as client:
        return SimulatedAnnotator(ground_truth).annotate_project(client, project, limit)
