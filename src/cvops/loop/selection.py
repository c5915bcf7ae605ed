"""Selection steps of the loop: describe the pool (features to Feast), pick the frames worth labeling."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from cvops.detection.types import Detections
from cvops.images import list_images, read_image

if TYPE_CHECKING:
    from cvops.active_learning.selection import SelectionResult

POOL_CAMERA_PREFIX = "pool:"
FEATURES_FILE = "selected_features.json"


def champion_package(model_name: str, tracking_uri: str | None) -> Path | None:
    """Return the champion's package folder, or None before the first champion."""
    from cvops.errors import RegistryNotFoundError
    from cvops.registry.mlflow_registry import CHAMPION, ModelRegistry

    registry = ModelRegistry(tracking_uri)
    try:
        registry.show(model_name, CHAMPION)
    except RegistryNotFoundError:
        return None
    return registry.resolve(f"models:/{model_name}@{CHAMPION}")


def pool_camera_id(pool_dir: Path) -> str:
    """Return the camera id the pool's frames are stored under in the feature store."""
    return POOL_CAMERA_PREFIX + pool_dir.resolve().name


def score_pool(
    pool_dir: Path, model_name: str, tracking_uri: str | None, out_dir: Path, feature_repo: Path | None = None
) -> int:
    """Compute every pool frame's features with the champion's detections; return the frame count.

    Rows (brightness, contrast, blur, detection count, scores; see
    :class:`~cvops.features.frame_features.FrameFeatures`) go to ``out_dir`` as parquet and,
    with ``feature_repo``, to its offline store, keyed by :func:`pool_camera_id` and the frame's
    index in the sorted pool. Before the first champion only image features are filled.
    """
    from cvops.detection.loader import load_detector
    from cvops.features.frame_features import frame_features
    from cvops.features.offline_store import write_frame_features
    from cvops.features.store import offline_dir

    package = champion_package(model_name, tracking_uri)
    detector = load_detector(package) if package is not None else None
    camera = pool_camera_id(pool_dir)
    now = datetime.now(UTC)
    rows = []
    for index, path in enumerate(list_images([pool_dir])):
        image = read_image(path)
        detections = detector.detect([image])[0] if detector is not None else Detections.empty()
        rows.append(frame_features(image, detections, camera, now, frame_index=index))
    write_frame_features(rows, out_dir)
    if feature_repo is not None:
        write_frame_features(rows, offline_dir(feature_repo))
    return len(rows)


def select_samples(
    pool_dir: Path,
    labeled_dir: Path,
    model_name: str,
    tracking_uri: str | None,
    budget: int,
    strategy: str,
    out_dir: Path,
    feature_repo: Path | None = None,
    seed: int = 0,
) -> SelectionResult:
    """Pick ``budget`` pool frames not yet labeled, with the champion's detections as pre-annotations.

    Before the first champion, there is no model to be uncertain: the pick is by diversity alone
    (``coreset``). With ``feature_repo``, the picked frames' features are read back with a
    point-in-time join (as they were known at selection time) into ``selected_features.json``.
    """
    from cvops.active_learning.selection import select_frames

    package = champion_package(model_name, tracking_uri)
    labeled_images = labeled_dir / "images"
    result = select_frames(
        pool_dir,
        package,
        budget,
        strategy if package is not None else "coreset",
        out_dir,
        labeled_dir=labeled_images if labeled_images.is_dir() else None,
        seed=seed,
    )
    if feature_repo is not None:
        _write_selected_features(result, pool_dir, feature_repo, out_dir / FEATURES_FILE)
    return result


def _write_selected_features(
    result: SelectionResult, pool_dir: Path, feature_repo: Path, target: Path
) -> None:
    import pandas as pd  # type: ignore[import-untyped]  # no stubs installed

    from cvops.features.store import historical_frame_features

    index_of = {path.resolve(): index for index, path in enumerate(list_images([pool_dir]))}
    entity_rows = pd.DataFrame(
        {
            "camera_id": pool_camera_id(pool_dir),
            "frame_index": [index_of[Path(frame.path).resolve()] for frame in result.frames],
            "event_timestamp": pd.Timestamp.now(tz="UTC"),
            "path": [frame.path for frame in result.frames],
        }
    )
    joined = historical_frame_features(feature_repo, entity_rows)
    target.write_text(
        json.dumps(json.loads(joined.to_json(orient="records", date_format="iso")), indent=2) + "\n"
    )
