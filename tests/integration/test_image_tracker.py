"""ImageTracker on real MOT17 frames: real OSNet embeddings and real camera-motion estimates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cvops.cli.app import main
from cvops.images import list_images, read_image
from cvops.metrics.tracking import MotSequence, evaluate_mot
from cvops.tracking.image_tracker import ImageTracker
from cvops.tracking.mot_files import read_mot_file
from cvops.tracking.motion_compensation import SparseFlowCompensator
from cvops.tracking.reid import OnnxEmbedder
from cvops.tracking.sequence import mot_detections_by_frame
from tests.conftest import fixture_path

pytestmark = pytest.mark.integration

OSNET = "models/osnet_x0_25_msmt17/osnet_x0_25_msmt17.onnx"


def test_appearance_is_computed_for_a_minority_of_boxes_and_ids_hold() -> None:
    sequence = fixture_path("mot17-mini/train/MOT17-04-FRCNN")
    images = list_images([sequence / "img1"])
    frames = mot_detections_by_frame(read_mot_file(sequence / "det/det.txt"), sequence, len(images))
    tracker = ImageTracker(embedder=OnnxEmbedder(fixture_path(OSNET)), compensator=SparseFlowCompensator())
    high_boxes = 0
    ids_per_frame = []
    for detections, path in zip(frames, images, strict=True):
        result = tracker.update(detections, read_image(path))
        high_boxes += int((detections.scores >= tracker.tracker.settings.high_score).sum())
        assert result.track_ids is not None
        ids_per_frame.append(set(result.track_ids[result.track_ids > 0].tolist()))
    # The first frame embeds everything; later frames only new, crowded or unembedded boxes.
    first = len(frames[0])
    assert first <= tracker.boxes_embedded < first + (high_boxes - first) / 2
    assert len(ids_per_frame[0] & ids_per_frame[-1]) >= 0.8 * len(ids_per_frame[0])


@pytest.mark.parametrize("options", [["--cmc"], ["--reid", "OSNET", "--cmc"]])
def test_track_cli_with_cmc_and_reid_scores_as_well_as_without(tmp_path: Path, options: list[str]) -> None:
    sequence = fixture_path("mot17-mini/train/MOT17-13-FRCNN")  # a camera on a moving bus
    options = [str(fixture_path(OSNET)) if o == "OSNET" else o for o in options]
    scores = []
    for name, extra in (("plain", []), ("with", options)):
        out = tmp_path / name / f"{sequence.name}.txt"
        args = ["-d", str(sequence / "det/det.txt"), "--frames", str(sequence / "img1"), "-o", str(out)]
        assert main(["track", *args, *extra]) == 0
        seq = MotSequence(sequence.name, sequence / "gt/gt.txt", out, 5)
        scores.append(evaluate_mot([seq]).combined.hota)
    assert scores[1] >= scores[0] - 0.01
    assert np.isfinite(scores).all()
