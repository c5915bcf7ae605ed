"""``select_frames``: score an unlabeled pool with a detector and write the frames to label next."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import numpy.typing as npt

from cvops.active_learning import uncertainty
from cvops.active_learning.diversity import DESCRIPTOR_SIZE, frame_descriptor
from cvops.active_learning.hashing import dhash, near_duplicates, phash
from cvops.active_learning.ranking import FrameScores, class_balanced, priority_order, rank_frames
from cvops.active_learning.records import STRATEGIES, SelectedFrame, SelectionSummary, Strategy
from cvops.config import DetectorSettings
from cvops.contracts.detections import ImageDetections
from cvops.contracts.model_package import read_model_package
from cvops.detection.detector import Detector, ImageArray
from cvops.detection.loader import load_detector
from cvops.detection.types import Detections
from cvops.errors import ImageReadError, InvalidInputError
from cvops.images import IMAGE_SUFFIXES, list_images, read_image

logger = logging.getLogger(__name__)

SELECTION_FILE = "selection.jsonl"
# Strategies that need no detector (before the first model exists), and the model name they record.
MODEL_FREE_STRATEGIES = ("random", "coreset")
NO_MODEL = "none"
SUMMARY_FILE = "summary.json"


@dataclass(frozen=True, slots=True)
class SelectionSettings:
    """Thresholds of a selection run; defaults live here.

    Attributes:
        scoring_threshold: Boxes above this score feed the uncertainty scores; low, so that
            doubtful boxes (which a normal threshold hides) are seen.
        prediction_threshold: Boxes above this score are written as pre-annotations.
        duplicate_bits: Largest dHash and pHash distance (bits of 64) still a near-duplicate.
        should_deduplicate: Drop near-duplicate frames before picking.
        num_threads: Runtime threads of the detectors (0: runtime default).
    """

    scoring_threshold: float = 0.05
    prediction_threshold: float = 0.25
    duplicate_bits: int = 6
    should_deduplicate: bool = True
    num_threads: int = 0

    def __post_init__(self) -> None:
        """Reject out-of-range values."""
        if not 0.0 <= self.scoring_threshold <= self.prediction_threshold <= 1.0:
            raise InvalidInputError(
                "expected 0 <= scoring_threshold <= prediction_threshold <= 1, got "
                f"{self.scoring_threshold}, {self.prediction_threshold}"
            )
        if not 0 <= self.duplicate_bits <= 64:
            raise InvalidInputError(f"duplicate_bits: expected 0..64, got {self.duplicate_bits}")


@dataclass(frozen=True, slots=True)
class SelectionResult:
    """What :func:`select_frames` chose and where it wrote it.

    Attributes:
        frames: The chosen frames, best first.
        summary: Counts of the run.
        selection_path: ``selection.jsonl`` (one :class:`SelectedFrame` a line).
        summary_path: ``summary.json``.
    """

    frames: tuple[SelectedFrame, ...]
    summary: SelectionSummary
    selection_path: Path
    summary_path: Path


ProgressCallback = Callable[[int, int], None]


def select_frames(
    pool_dir: Path,
    model_dir: Path | None,
    budget: int,
    strategy: str,
    out_dir: Path,
    challenger_dir: Path | None = None,
    labeled_dir: Path | None = None,
    seed: int = 0,
    settings: SelectionSettings | None = None,
    on_progress: ProgressCallback | None = None,
) -> SelectionResult:
    """Pick the ``budget`` frames of a pool most worth labeling and write them to ``out_dir``.

    Args:
        pool_dir: Folder of unlabeled frames (image files).
        model_dir: Model package of the current (champion) detector. None (no model trained
            yet) only with ``random`` or ``coreset``: frames then carry no pre-annotations.
        budget: Frames to pick, >= 1.
        strategy: One of :data:`~cvops.active_learning.records.STRATEGIES`.
        out_dir: Folder for ``selection.jsonl`` and ``summary.json``.
        challenger_dir: Model package of a challenger; needed by ``disagreement``, and added to
            ``combined`` when given.
        labeled_dir: Folder of frames already labeled, searched recursively (a dataset's
            ``images/`` with split folders works): diversity counts them as chosen and
            near-duplicates of them are dropped. Missing or empty: nothing labeled yet.
        seed: Seed of the random choices.
        settings: Thresholds; defaults to :class:`SelectionSettings`.
        on_progress: Called as ``(frames_done, frames_total)`` after each pool frame.

    Raises:
        InvalidInputError: For a budget < 1, an unknown strategy, a model-based strategy
            without a model, ``disagreement`` without a challenger, or a challenger with other
            class names.
        ImageReadError: For a missing or empty pool, or an unreadable frame.
        ModelPackageError: For a missing or broken model package.
    """
    chosen = settings or SelectionSettings()
    check_request(budget, strategy, challenger_dir is not None, seed, has_model=model_dir is not None)
    files = _list_pool(pool_dir, "pool")
    labeled_files = _list_labeled(labeled_dir)
    detector_settings = DetectorSettings(chosen.scoring_threshold, num_threads=chosen.num_threads)
    detector: Detector | None = None
    model_name = NO_MODEL
    if model_dir is not None:
        spec = read_model_package(model_dir)
        detector = load_detector(model_dir, detector_settings)
        model_name = spec.name
    challenger: Detector | None = None
    challenger_name: str | None = None
    if challenger_dir is not None and model_dir is not None:
        challenger_spec = read_model_package(challenger_dir)
        if challenger_spec.class_names != spec.class_names:
            raise InvalidInputError(
                f"challenger: expected the champion's {len(spec.class_names)} class names, "
                f"got {len(challenger_spec.class_names)} differing ones"
            )
        challenger = load_detector(challenger_dir, detector_settings)
        challenger_name = challenger_spec.name
    should_flip = strategy in ("localization", "combined")
    scores, predictions = _score_pool(files, detector, challenger, should_flip, model_name, on_progress)
    labeled_dhashes, labeled_phashes, labeled_descriptors = _describe(labeled_files)
    candidates = np.ones(len(files), bool)
    if chosen.should_deduplicate:
        duplicate_of = near_duplicates(
            scores.dhashes,
            scores.phashes,
            priority_order(scores, cast(Strategy, strategy), seed),
            chosen.duplicate_bits,
            labeled_dhashes,
            labeled_phashes,
        )
        candidates = duplicate_of == -1
    picks = rank_frames(scores, cast(Strategy, strategy), budget, labeled_descriptors, seed, candidates)
    frames = tuple(
        SelectedFrame(
            path=str(files[pick.index]),
            rank=rank,
            strategy=cast(Strategy, strategy),
            priority=pick.priority,
            scores=scores.frame_scores(pick.index, pick.distance),
            reason=pick.reason,
            predictions=_pre_annotations(predictions[pick.index], chosen.prediction_threshold),
        )
        for rank, pick in enumerate(picks, start=1)
    )
    summary = SelectionSummary(
        strategy=cast(Strategy, strategy),
        budget=budget,
        selected=len(frames),
        pool_size=len(files),
        duplicates_removed=int((~candidates).sum()),
        labeled_size=len(labeled_files),
        model=model_name,
        challenger=challenger_name,
        seed=seed,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    selection_path = out_dir / SELECTION_FILE
    selection_path.write_text("".join(frame.model_dump_json() + "\n" for frame in frames))
    summary_path = out_dir / SUMMARY_FILE
    summary_path.write_text(json.dumps(summary.model_dump(), indent=2) + "\n")
    logger.info("selected %d of %d frames with %s", len(frames), len(files), strategy)
    return SelectionResult(frames, summary, selection_path, summary_path)


def check_request(
    budget: int, strategy: str, has_challenger: bool, seed: int = 0, has_model: bool = True
) -> None:
    """Reject a request that cannot run, before any model or image is opened.

    Raises:
        InvalidInputError: For a budget < 1, an unknown strategy, a strategy other than
            ``random`` and ``coreset`` without a model, ``disagreement`` without a challenger,
            or a negative seed.
    """
    if budget < 1:
        raise InvalidInputError(f"budget: expected >= 1 frames, got {budget}")
    if strategy not in STRATEGIES:
        raise InvalidInputError(f"strategy: expected one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if not has_model and (strategy not in MODEL_FREE_STRATEGIES or has_challenger):
        raise InvalidInputError(
            f"strategy {strategy!r}: expected a model package (--model), got none "
            f"(only {' and '.join(MODEL_FREE_STRATEGIES)} run without a model, and without a challenger)"
        )
    if strategy == "disagreement" and not has_challenger:
        raise InvalidInputError(
            "strategy 'disagreement': expected a challenger model (--challenger), got none"
        )
    if seed < 0:
        raise InvalidInputError(f"seed: expected >= 0, got {seed}")


def _list_labeled(folder: Path | None) -> list[Path]:
    """Image files anywhere under ``folder``, sorted; none when it is None or missing."""
    if folder is None or not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _list_pool(folder: Path, what: str) -> list[Path]:
    if not folder.is_dir():
        raise ImageReadError(f"{folder}: expected a {what} (a folder of images), got no such folder")
    try:
        return list_images([folder])
    except ImageReadError:
        raise ImageReadError(f"{folder}: the {what} is empty, expected image files") from None


def _score_pool(
    files: list[Path],
    detector: Detector | None,
    challenger: Detector | None,
    should_flip: bool,
    model_name: str,
    on_progress: ProgressCallback | None,
) -> tuple[FrameScores, list[ImageDetections]]:
    columns: dict[str, list[float]] = {}
    if detector is not None:
        columns |= {name: [] for name in ("least_confidence", "margin", "entropy")}
        if should_flip:
            columns["localization"] = []
        if challenger is not None:
            columns["disagreement"] = []
    dhashes, phashes, descriptors = [], [], []
    doubts: list[npt.NDArray[np.float64]] = []
    predictions: list[ImageDetections] = []
    for done, path in enumerate(files, start=1):
        image = read_image(path)
        detections = Detections.empty() if detector is None else detector.detect([image])[0]
        if detector is not None:
            _add_scores(columns, image, detections, detector, challenger, should_flip)
            doubts.append(uncertainty.class_doubt(detections, len(detector.class_names)))
        dhashes.append(dhash(image))
        phashes.append(phash(image))
        descriptors.append(frame_descriptor(image))
        predictions.append(
            ImageDetections.from_detections(str(path), image.shape[1], image.shape[0], model_name, detections)
        )
        if on_progress is not None:
            on_progress(done, len(files))
    values = {name: np.asarray(column, np.float64) for name, column in columns.items()}
    if detector is not None:
        values["class_balanced"] = class_balanced(np.stack(doubts))
    scores = FrameScores(
        values=values,
        descriptors=np.stack(descriptors).astype(np.float32),
        dhashes=np.asarray(dhashes, np.uint64),
        phashes=np.asarray(phashes, np.uint64),
    )
    return scores, predictions


def _add_scores(
    columns: dict[str, list[float]],
    image: ImageArray,
    detections: Detections,
    detector: Detector,
    challenger: Detector | None,
    should_flip: bool,
) -> None:
    """Append one frame's uncertainty scores to ``columns``."""
    columns["least_confidence"].append(uncertainty.least_confidence(detections))
    columns["margin"].append(uncertainty.margin(detections))
    columns["entropy"].append(uncertainty.entropy(detections))
    if should_flip:
        mirrored = detector.detect([np.ascontiguousarray(image[:, ::-1])])[0]
        unflipped = Detections.from_arrays(
            uncertainty.flip_boxes_horizontal(mirrored.xyxy, image.shape[1]),
            mirrored.scores,
            mirrored.class_ids,
            detector.class_names,
            class_scores=mirrored.class_scores,
        )
        columns["localization"].append(uncertainty.localization_instability(detections, unflipped))
    if challenger is not None:
        other = challenger.detect([image])[0]
        columns["disagreement"].append(uncertainty.disagreement(detections, other))


def _pre_annotations(record: ImageDetections, threshold: float) -> ImageDetections:
    """Keep the boxes scoring above the prediction threshold (the scoring pass used a lower one)."""
    kept = [d for d in record.detections if d.score > threshold]
    return record.model_copy(update={"detections": kept})


def _describe(
    files: list[Path],
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64], npt.NDArray[np.float32]]:
    """Hashes and descriptors of already labeled frames."""
    images = [read_image(path) for path in files]
    return (
        np.asarray([dhash(i) for i in images], np.uint64),
        np.asarray([phash(i) for i in images], np.uint64),
        np.asarray([frame_descriptor(i) for i in images], np.float32).reshape(len(images), DESCRIPTOR_SIZE),
    )
