"""``detect_drift``: compare a current window of frames with a reference, in one call.

Tested features (each one vote in the drift share):

- per frame (Evidently): brightness, contrast, Laplacian-variance blur, and the detection count
  when a detector ran;
- per box (Evidently, when both windows have boxes): score, width and height relative to the
  image, aspect ratio (w/h), class name (class frequencies);
- the image embedding of :mod:`cvops.monitoring.embedding` (MMD permutation test).

The window drifted when the share of drifted features reaches
:attr:`DriftSettings.drift_share_threshold` (0.2) and at least
:attr:`DriftSettings.min_drifted_features` (2) drifted, or when one feature's p-value is
below :attr:`DriftSettings.strong_p_value` (0.001). Then its frames become active-learning candidates,
the gauges go to a Prometheus textfile (and a Pushgateway when given), and the check is recorded
on the registered model version when one is named.

Files in ``out_dir``: ``drift.json`` (:meth:`DriftResult.to_dict`), ``drift_frames.html`` and
``drift_boxes.html`` (Evidently, self-contained), ``evidently_frames.json`` and
``evidently_boxes.json`` (Evidently snapshots), ``drift.prom``, ``reference_features/`` and
``current_features/`` (the computed tables, reusable as ``--reference``/``--current``), and the
candidates (see :mod:`cvops.monitoring.candidates`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from cvops.detection.detector import Detector
from cvops.errors import InvalidInputError
from cvops.monitoring.candidates import novelty_scores, remove_candidates, write_candidates
from cvops.monitoring.drift_metrics import push_drift_metrics, write_prometheus_textfile
from cvops.monitoring.evidently_report import run_evidently
from cvops.monitoring.inputs import frame_paths, is_feature_source
from cvops.monitoring.mmd import mmd_test
from cvops.monitoring.results import (
    DRIFT_JSON,
    PROMETHEUS_FILE,
    DriftResult,
    DriftSettings,
    FeatureDrift,
    drift_verdict,
)
from cvops.monitoring.tables import (
    BOX_CLASS,
    BOX_NUMERIC_COLUMNS,
    DETECTION_COUNT,
    EMBEDDING_COLUMNS,
    FRAME_PATH,
    IMAGE_COLUMNS,
    FeatureTables,
    build_feature_tables,
    read_feature_tables,
    write_feature_tables,
)

logger = logging.getLogger(__name__)

EMBEDDING_FEATURE = "image_embedding"
ProgressCallback = Callable[[str, int, int], None]


def detect_drift(
    reference: Path,
    current: Path,
    out_dir: Path,
    model: Path | str | None = None,
    *,
    settings: DriftSettings | None = None,
    reference_label: str | None = None,
    current_label: str | None = None,
    record_on: str | None = None,
    tracking_uri: str | None = None,
    pushgateway_url: str | None = None,
    detector: Detector | None = None,
    on_progress: ProgressCallback | None = None,
) -> DriftResult:
    """Test whether the current window of frames drifted from the reference window.

    Args:
        reference: Reference window: a dataset (YOLO ``data.yaml``, COCO JSON, or their folder),
            a feature folder or ``.parquet`` table, a ``.txt`` list of frames, or a frame folder.
        current: Current window: a feature folder or table, a ``.txt`` list, or a frame folder.
        out_dir: Folder for the reports, tables, gauges and candidates (created).
        model: Detector for the box features: a package folder or a ``models:/`` URI. None
            tests image features only (unless feature tables bring boxes).
        settings: Thresholds; defaults from :class:`DriftSettings`.
        reference_label: Name of the reference window in gauges and events (default: its name).
        current_label: Name of the current window (default: its name).
        record_on: ``models:/NAME/VERSION`` or ``models:/NAME@ALIAS`` to record the check on;
            default: ``model`` when that is a ``models:/`` URI.
        tracking_uri: MLflow tracking URI for ``models:/`` URIs (None: the embedded registry).
        pushgateway_url: Also push the gauges to this Pushgateway.
        detector: A detector to use instead of loading ``model`` (for tests and callers that
            hold one already).
        on_progress: Called as ``(window, frames_done, frames_total)`` while tables are built.

    Raises:
        InvalidInputError: For a source that names no frames, or windows without a common feature.
        ImageReadError: For an unreadable frame.
        ModelPackageError: For a bad model package.
        RegistryError: When a ``models:/`` URI cannot be resolved or tagged.
        MetricsPushError: When the Pushgateway push fails (the files are written before).
    """
    cfg = settings or DriftSettings()
    model_name = str(model) if model is not None else None
    if detector is None and model is not None:
        detector = _open_detector(model, tracking_uri)
    if record_on is None and isinstance(model, str) and model.startswith("models:/"):
        record_on = model
    out_dir.mkdir(parents=True, exist_ok=True)
    ref_tables = _window_tables(reference, "reference", detector, cfg, out_dir, on_progress)
    cur_tables = _window_tables(current, "current", detector, cfg, out_dir, on_progress)
    features, skipped, html_paths = _run_tests(ref_tables, cur_tables, cfg, out_dir)
    drift_share, is_drifted = drift_verdict(features, cfg)
    candidates = None
    if is_drifted and cfg.max_candidates > 0:
        candidates = _write_candidates(ref_tables, cur_tables, cfg, out_dir, skipped)
    else:
        remove_candidates(out_dir)  # a previous check's candidates must not outlive its verdict
    result = DriftResult(
        reference=reference_label or _label(reference),
        current=current_label or _label(current),
        drift_share=drift_share,
        is_drifted=is_drifted,
        features=tuple(features),
        reference_frames=len(ref_tables.frames),
        current_frames=len(cur_tables.frames),
        reference_boxes=None if ref_tables.boxes is None else len(ref_tables.boxes),
        current_boxes=None if cur_tables.boxes is None else len(cur_tables.boxes),
        skipped=tuple(skipped),
        out_dir=out_dir,
        html_paths=tuple(html_paths),
        json_path=out_dir / DRIFT_JSON,
        prometheus_path=out_dir / PROMETHEUS_FILE,
        candidates_path=candidates,
        model=model_name,
    )
    write_prometheus_textfile(result, out_dir / PROMETHEUS_FILE)
    _write_json(result)
    if record_on is not None:
        from cvops.monitoring.model_events import record_drift_on_model

        result = dataclasses.replace(
            result, recorded_on=record_drift_on_model(result, record_on, tracking_uri=tracking_uri)
        )
        _write_json(result)
    if pushgateway_url is not None:
        push_drift_metrics(result, pushgateway_url)
    logger.info(
        "drift share %.3f (%s): %s",
        result.drift_share,
        "drifted" if is_drifted else "no drift",
        result.drifted_features,
    )
    return result


def _open_detector(model: Path | str, tracking_uri: str | None) -> Detector:
    from cvops.detection.loader import load_detector

    if isinstance(model, str) and model.startswith("models:/"):
        from cvops.registry.mlflow_registry import resolve_model_uri

        return load_detector(resolve_model_uri(model, tracking_uri))
    return load_detector(Path(model))


def _window_tables(
    source: Path,
    window: str,
    detector: Detector | None,
    cfg: DriftSettings,
    out_dir: Path,
    on_progress: ProgressCallback | None,
) -> FeatureTables:
    if is_feature_source(source):
        return read_feature_tables(source)
    paths = frame_paths(source)
    progress = None if on_progress is None else (lambda done, total: on_progress(window, done, total))
    tables = build_feature_tables(paths, detector, batch_size=cfg.batch_size, on_progress=progress)
    write_feature_tables(tables, out_dir / f"{window}_features")
    return tables


def _run_tests(
    ref: FeatureTables, cur: FeatureTables, cfg: DriftSettings, out_dir: Path
) -> tuple[list[FeatureDrift], list[str], list[Path]]:
    features: list[FeatureDrift] = []
    skipped: list[str] = []
    html_paths: list[Path] = []
    frame_columns = [
        c for c in (*IMAGE_COLUMNS, DETECTION_COUNT) if c in ref.frames.columns and c in cur.frames.columns
    ]
    if frame_columns:
        html = out_dir / "drift_frames.html"
        features += run_evidently(
            ref.frames,
            cur.frames,
            numerical=frame_columns,
            table="frames",
            html_path=html,
            json_path=out_dir / "evidently_frames.json",
        )
        html_paths.append(html)
    if ref.boxes is None or cur.boxes is None:
        skipped.append(
            "boxes: no detector ran on " + ("both windows" if ref.boxes is cur.boxes else "one window")
        )
    elif min(len(ref.boxes), len(cur.boxes)) < 2:
        skipped.append(f"boxes: expected >= 2 boxes per window, got {len(ref.boxes)} and {len(cur.boxes)}")
    else:
        html = out_dir / "drift_boxes.html"
        features += run_evidently(
            ref.boxes,
            cur.boxes,
            numerical=BOX_NUMERIC_COLUMNS,
            categorical=(BOX_CLASS,),
            table="boxes",
            html_path=html,
            json_path=out_dir / "evidently_boxes.json",
        )
        html_paths.append(html)
    if not (ref.has_embeddings and cur.has_embeddings):
        skipped.append("image_embedding: a window's table has no embedding columns")
    elif min(len(ref.frames), len(cur.frames)) < 2:
        skipped.append("image_embedding: expected >= 2 frames per window")
    else:
        test = mmd_test(
            ref.frames[list(EMBEDDING_COLUMNS)].to_numpy(np.float32),
            cur.frames[list(EMBEDDING_COLUMNS)].to_numpy(np.float32),
            permutations=cfg.mmd_permutations,
            seed=cfg.seed,
        )
        features.append(
            FeatureDrift(
                EMBEDDING_FEATURE,
                "embedding",
                "mmd",
                test.p_value,
                cfg.embedding_p_value,
                test.p_value < cfg.embedding_p_value,
            )
        )
    if not features:
        raise InvalidInputError(
            "drift: expected a feature both windows have (image statistics, boxes or embeddings), got none"
        )
    return features, skipped, html_paths


def _write_candidates(
    ref: FeatureTables, cur: FeatureTables, cfg: DriftSettings, out_dir: Path, skipped: list[str]
) -> Path | None:
    if FRAME_PATH not in cur.frames.columns:
        skipped.append("candidates: the current table has no frame_path column")
        return None
    paths = [Path(p) for p in cur.frames[FRAME_PATH]]
    novelty = None
    if ref.has_embeddings and cur.has_embeddings:
        novelty = novelty_scores(
            ref.frames[list(EMBEDDING_COLUMNS)].to_numpy(np.float32),
            cur.frames[list(EMBEDDING_COLUMNS)].to_numpy(np.float32),
        )
    return write_candidates(paths, novelty, out_dir, cfg.max_candidates)


def _write_json(result: DriftResult) -> None:
    path = result.out_dir / DRIFT_JSON
    path.write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")


def _label(source: Path) -> str:
    """Name a window by its path: the file or folder name, with its parent for generic names."""
    resolved = source.resolve()
    if resolved.stem in {"img1", "images", "frames", "current", "reference", "candidates"}:
        return f"{resolved.parent.name}/{resolved.name}"
    return resolved.name
