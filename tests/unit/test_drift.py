"""Unit tests of the drift building blocks: MMD test, embedding, perturbations, tables, gauges, candidates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from prometheus_client import generate_latest

from cvops.config import DetectorSettings
from cvops.errors import ImageReadError, InvalidInputError
from cvops.features.image_stats import image_stats
from cvops.images import list_images, write_image
from cvops.monitoring.candidates import novelty_scores, remove_candidates, write_candidates
from cvops.monitoring.drift_metrics import drift_registry, push_drift_metrics
from cvops.monitoring.embedding import EMBEDDING_SIZE, image_embedding
from cvops.monitoring.inputs import frame_paths, is_feature_source
from cvops.monitoring.mmd import mmd_test
from cvops.monitoring.perturb import perturb_image
from cvops.monitoring.results import DriftResult, DriftSettings, FeatureDrift, drift_verdict
from cvops.monitoring.tables import (
    BOX_NUMERIC_COLUMNS,
    EMBEDDING_COLUMNS,
    build_feature_tables,
    read_feature_tables,
    write_feature_tables,
)
from tests.conftest import dets


def _scene(seed: int, size: tuple[int, int] = (48, 64)) -> np.ndarray:
    """A textured BGR image: smooth gradient plus seeded noise."""
    rng = np.random.default_rng(seed)
    gradient = np.linspace(40, 200, size[1], dtype=np.float32)[None, :, None]
    noise = rng.normal(0, 20, (*size, 3)).astype(np.float32)
    return np.clip(gradient + noise, 0, 255).astype(np.uint8)


# -- MMD ----------------------------------------------------------------------------------------


def test_mmd_same_distribution_is_not_significant() -> None:
    rng = np.random.default_rng(1)
    result = mmd_test(rng.normal(size=(60, 5)), rng.normal(size=(60, 5)), permutations=200)
    assert result.p_value > 0.05
    assert (result.reference_size, result.current_size) == (60, 60)


def test_mmd_shifted_distribution_is_significant() -> None:
    rng = np.random.default_rng(2)
    result = mmd_test(rng.normal(size=(40, 5)), rng.normal(0.8, 1.0, size=(40, 5)), permutations=200)
    assert result.p_value < 0.01
    assert result.mmd2 > 0


def test_mmd_subsamples_large_windows() -> None:
    rng = np.random.default_rng(3)
    result = mmd_test(rng.normal(size=(900, 3)), rng.normal(size=(50, 3)), permutations=20, max_rows=100)
    assert (result.reference_size, result.current_size) == (100, 50)


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        (np.zeros((1, 3)), np.zeros((5, 3)), ">= 2 rows"),
        (np.zeros((4, 3)), np.zeros((5, 2)), "expected \\(M, D\\)"),
        (np.zeros(4), np.zeros((5, 2)), "expected \\(M, D\\)"),
        (np.full((4, 3), np.nan), np.zeros((5, 3)), "finite"),
    ],
    ids=["too-few-rows", "width-mismatch", "not-2d", "nan"],
)
def test_mmd_rejects_bad_input(x: np.ndarray, y: np.ndarray, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        mmd_test(x.astype(np.float32), y.astype(np.float32))


# -- embedding and perturbations ------------------------------------------------------------------


def test_embedding_shape_and_exposure_invariant_thumbnail() -> None:
    image = _scene(0)
    brighter = np.clip(image.astype(np.int16) + 30, 0, 255).astype(np.uint8)
    a, b = image_embedding(image), image_embedding(brighter)
    assert a.shape == (EMBEDDING_SIZE,)
    assert a.dtype == np.float32
    thumb = slice(0, 64)
    np.testing.assert_allclose(a[thumb], b[thumb], atol=0.02)  # the centred thumbnail ignores exposure
    assert np.abs(a[64:] - b[64:]).sum() > 0.2  # the value histogram sees it
    np.testing.assert_allclose(a[64:].reshape(3, 8).sum(axis=1), 1.0, atol=1e-5)


def test_embedding_rejects_gray() -> None:
    with pytest.raises(ValueError, match="expected a \\(H, W, 3\\)"):
        image_embedding(np.zeros((8, 8), np.uint8))


@pytest.mark.parametrize(
    ("kind", "strength", "check"),
    [
        ("brightness", 40.0, lambda before, after: after.brightness - before.brightness > 30),
        ("brightness", -40.0, lambda before, after: before.brightness - after.brightness > 30),
        ("blur", 2.0, lambda before, after: after.blur_laplacian_var < 0.2 * before.blur_laplacian_var),
        ("noise", 25.0, lambda before, after: after.blur_laplacian_var > 1.5 * before.blur_laplacian_var),
    ],
    ids=["brighter", "darker", "blur", "noise"],
)
def test_perturbations_move_the_statistic_they_target(kind: str, strength: float, check: object) -> None:
    image = _scene(5)
    after = perturb_image(image, kind, strength, np.random.default_rng(0))  # type: ignore[arg-type]
    assert after.shape == image.shape
    assert after.dtype == np.uint8
    assert check(image_stats(image), image_stats(after))  # type: ignore[operator]


@pytest.mark.parametrize(("kind", "strength"), [("fog", 1.0), ("blur", 0.0), ("noise", -1.0)], ids=str)
def test_perturbation_rejects_bad_kind_or_strength(kind: str, strength: float) -> None:
    with pytest.raises(InvalidInputError):
        perturb_image(_scene(0), kind, strength, np.random.default_rng(0))  # type: ignore[arg-type]


# -- tables and inputs ----------------------------------------------------------------------------


class _FixedDetector:
    """A Detector plug-in returning the same boxes for every image (one 'a', one 'b')."""

    class_names = ("a", "b")

    def detect(self, images: list[np.ndarray], settings: DetectorSettings | None = None) -> list[object]:
        return [dets([[0, 0, 32, 12], [10, 10, 20, 34]], [0.9, 0.4], [0, 1], ("a", "b")) for _ in images]


def _write_scenes(folder: Path, count: int) -> list[Path]:
    paths = [folder / f"{i:03d}.png" for i in range(count)]
    for i, path in enumerate(paths):
        write_image(path, _scene(i))
    return paths


def test_tables_hold_frame_and_box_features(tmp_path: Path) -> None:
    paths = _write_scenes(tmp_path / "frames", 3)
    tables = build_feature_tables(paths, _FixedDetector(), batch_size=2)  # type: ignore[arg-type]
    assert len(tables.frames) == 3
    assert tables.has_embeddings
    assert list(tables.frames["detection_count"]) == [2, 2, 2]
    assert tables.boxes is not None
    assert len(tables.boxes) == 6
    first = tables.boxes.iloc[0]
    assert first["box_width_norm"] == pytest.approx(32 / 64)
    assert first["box_height_norm"] == pytest.approx(12 / 48)
    assert first["box_aspect_ratio_wh"] == pytest.approx(32 / 12)
    assert list(tables.boxes["class_name"][:2]) == ["a", "b"]
    write_feature_tables(tables, tmp_path / "features")
    back = read_feature_tables(tmp_path / "features")
    assert is_feature_source(tmp_path / "features")
    assert back.boxes is not None
    assert list(back.boxes.columns[1:5]) == list(BOX_NUMERIC_COLUMNS)
    np.testing.assert_allclose(back.frames[list(EMBEDDING_COLUMNS)], tables.frames[list(EMBEDDING_COLUMNS)])


def test_tables_without_detector_have_no_box_table(tmp_path: Path) -> None:
    tables = build_feature_tables(_write_scenes(tmp_path, 2))
    assert tables.boxes is None
    assert "detection_count" not in tables.frames.columns


def test_frame_paths_from_folder_list_and_errors(tmp_path: Path) -> None:
    paths = _write_scenes(tmp_path / "frames", 2)
    assert frame_paths(tmp_path / "frames") == paths
    assert frame_paths(tmp_path) == paths  # no top-level image: searched below
    listing = tmp_path / "window.txt"
    listing.write_text("frames/001.png\n\n" + f"{paths[0]}\n")
    assert frame_paths(listing) == [tmp_path / "frames" / "001.png", paths[0]]
    listing.write_text("frames/missing.png\n")
    with pytest.raises(InvalidInputError, match="1 missing"):
        frame_paths(listing)
    with pytest.raises(InvalidInputError, match="no such path"):
        frame_paths(tmp_path / "nope")
    (tmp_path / "notes.csv").write_text("x")
    with pytest.raises(InvalidInputError, match=r"got \.csv"):
        frame_paths(tmp_path / "notes.csv")
    with pytest.raises(ImageReadError):
        build_feature_tables([tmp_path / "notes.csv"])


def test_read_feature_tables_rejects_foreign_parquet(tmp_path: Path) -> None:
    import pandas as pd

    pd.DataFrame({"x": [1.0]}).to_parquet(tmp_path / "other.parquet")
    with pytest.raises(InvalidInputError, match="expected some of the columns"):
        read_feature_tables(tmp_path / "other.parquet")
    (tmp_path / "broken.parquet").write_text("not parquet")
    with pytest.raises(InvalidInputError, match="unreadable"):
        read_feature_tables(tmp_path / "broken.parquet")


# -- verdict records, gauges, candidates ------------------------------------------------------------


def _result(tmp_path: Path) -> DriftResult:
    features = (
        FeatureDrift("brightness_gray", "frames", "K-S p_value", 0.001, 0.05, True),
        FeatureDrift("score", "boxes", "K-S p_value", 0.6, 0.05, False),
    )
    return DriftResult("ref", "cur", 0.5, True, features, 10, 12, 30, None, (), tmp_path)


def test_gauges_carry_share_verdict_and_feature_flags(tmp_path: Path) -> None:
    registry = drift_registry(_result(tmp_path))
    window = {"reference": "ref", "current": "cur"}
    assert registry.get_sample_value("cvops_drift_share", window) == 0.5
    assert registry.get_sample_value("cvops_drift_detected", window) == 1.0
    flag = registry.get_sample_value(
        "cvops_drift_feature_drifted", {**window, "feature": "brightness_gray", "table": "frames"}
    )
    assert flag == 1.0
    assert (
        registry.get_sample_value(
            "cvops_drift_feature_drifted", {**window, "feature": "score", "table": "boxes"}
        )
        == 0
    )
    assert registry.get_sample_value("cvops_drift_frames", {**window, "window": "current"}) == 12
    assert b"cvops_drift_feature_score" in generate_latest(registry)


def test_push_rejects_non_http_url(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="http"):
        push_drift_metrics(_result(tmp_path), "127.0.0.1:9091")


def test_novelty_is_distance_to_nearest_reference() -> None:
    reference = np.array([[0.0, 0.0], [10.0, 0.0]], np.float32)
    current = np.array([[1.0, 0.0], [10.0, 3.0], [5.0, 0.0]], np.float32)
    np.testing.assert_allclose(novelty_scores(reference, current), [1.0, 3.0, 5.0], atol=1e-6)


def test_candidates_most_novel_first_as_list_jsonl_and_pool_folder(tmp_path: Path) -> None:
    paths = _write_scenes(tmp_path / "frames", 3)
    list_file = write_candidates(paths, np.array([0.1, 0.9, 0.5]), tmp_path / "out", max_candidates=2)
    assert list_file.read_text().splitlines() == [str(paths[1].resolve()), str(paths[2].resolve())]
    jsonl = (tmp_path / "out" / "candidates.jsonl").read_text().splitlines()
    assert '"rank": 0' in jsonl[0]
    assert '"novelty": 0.9' in jsonl[0]
    pool = list_images([tmp_path / "out" / "candidates"])  # what `cvops select --pool` lists
    assert [p.name for p in pool] == ["000000_001.png", "000001_002.png"]
    assert pool[0].resolve() == paths[1].resolve()
    write_candidates(paths, None, tmp_path / "out", max_candidates=1)  # a rerun replaces the links
    assert [p.name for p in list_images([tmp_path / "out" / "candidates"])] == ["000000_000.png"]
    remove_candidates(tmp_path / "out")  # what a later check without drift does
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []
    assert all(p.is_file() for p in paths)  # the frames themselves stay


@pytest.mark.parametrize(
    "kwargs",
    [
        {"drift_share_threshold": 0.0},
        {"drift_share_threshold": 1.5},
        {"embedding_p_value": 1.0},
        {"min_drifted_features": 0},
        {"strong_p_value": 1.0},
        {"mmd_permutations": 0},
        {"max_candidates": -1},
    ],
    ids=[
        "share-zero",
        "share-above-one",
        "p-one",
        "min-features-zero",
        "strong-p-one",
        "no-permutations",
        "negative-candidates",
    ],
)
def test_settings_reject_out_of_range(kwargs: dict[str, float]) -> None:
    with pytest.raises(InvalidInputError):
        DriftSettings(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("reference", "current", "expect_drift"),
    [
        (["a"] * 30 + ["b"] * 30, ["a"] * 28 + ["b"] * 32, False),
        (["a"] * 30 + ["b"] * 30, ["a"] * 29 + ["b"] * 30 + ["handbag"], False),
        (["a"] * 50 + ["b"] * 10, ["a"] * 10 + ["b"] * 50, True),
        (["a"] * 10, ["a"] * 12, False),
    ],
    ids=["same-mix", "one-rare-new-class", "swapped-mix", "one-class"],
)
def test_class_frequency_test(reference: list[str], current: list[str], expect_drift: bool) -> None:
    import pandas as pd

    from cvops.monitoring.evidently_report import chi2_contingency_p_value

    p_value = chi2_contingency_p_value(pd.Series(reference), pd.Series(current))
    assert (p_value < 0.05) is expect_drift, p_value


def _feature(name: str, score: float, drifted: bool, is_p_value: bool = True) -> FeatureDrift:
    return FeatureDrift(
        name, "frames", "ks" if is_p_value else "wasserstein", score, 0.05, drifted, is_p_value
    )


QUIET = _feature("q", 0.5, False)


@pytest.mark.parametrize(
    ("features", "share", "expected"),
    [
        ([QUIET] * 10, 0.0, False),
        ([_feature("a", 0.01, True)] + [QUIET] * 9, 0.1, False),  # one weak signal: a common false alarm
        ([_feature("a", 0.01, True), _feature("b", 0.02, True)] + [QUIET] * 8, 0.2, True),
        ([_feature("a", 0.01, True), _feature("b", 0.02, True)] + [QUIET] * 10, 2 / 12, False),
        ([_feature("a", 1e-6, True)] + [QUIET] * 9, 0.1, True),  # overwhelming evidence in one feature
        ([_feature("a", 0.0001, True, is_p_value=False)] + [QUIET] * 9, 0.1, False),  # a distance, not a p
        ([_feature("a", 0.01, True)], 1.0, False),  # one feature alone needs the strong level
    ],
    ids=[
        "quiet",
        "one-weak",
        "two-of-ten",
        "two-of-twelve",
        "one-strong",
        "small-distance",
        "single-feature",
    ],
)
def test_drift_verdict(features: list[FeatureDrift], share: float, expected: bool) -> None:
    assert drift_verdict(features, DriftSettings()) == (pytest.approx(share), expected)
