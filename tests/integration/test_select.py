"""``cvops select`` and ``select_frames`` on real photos with the pretrained YOLOX-nano."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from cvops.active_learning import uncertainty
from cvops.active_learning.records import SelectedFrame, SelectionSummary
from cvops.active_learning.selection import select_frames
from cvops.config import DetectorSettings
from cvops.detection.loader import load_detector
from cvops.errors import ImageReadError, InvalidInputError, ModelPackageError
from cvops.images import read_image
from tests.conftest import fixture_path

pytestmark = pytest.mark.integration

CVOPS = [sys.executable, "-m", "cvops"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CVOPS, *args], capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 8 coco8 photos and bus.jpg, plus bus_copy.jpg: a byte-identical twin of bus.jpg."""
    folder = tmp_path_factory.mktemp("pool")
    for photo in sorted(fixture_path("coco8/images").glob("*/*.jpg")):
        shutil.copyfile(photo, folder / photo.name)
    shutil.copyfile(fixture_path("images/bus.jpg"), folder / "bus.jpg")
    shutil.copyfile(fixture_path("images/bus.jpg"), folder / "bus_copy.jpg")
    return folder


def test_cli_writes_ranked_frames_with_scores_reasons_and_pre_annotations(
    yolox_package: Path, pool: Path, tmp_path: Path
) -> None:
    result = _run(
        "select", "--pool", str(pool), "--model", str(yolox_package), "--budget", "4", "--out", str(tmp_path)
    )
    assert result.returncode == 0, result.stderr
    frames = [
        SelectedFrame.model_validate_json(line)
        for line in (tmp_path / "selection.jsonl").read_text().splitlines()
    ]
    summary = SelectionSummary.model_validate_json((tmp_path / "summary.json").read_text())
    assert [f.rank for f in frames] == [1, 2, 3, 4]
    assert summary.strategy == "combined"
    assert (summary.pool_size, summary.selected, summary.duplicates_removed) == (10, 4, 1)
    names = [Path(f.path).name for f in frames]
    assert not {"bus.jpg", "bus_copy.jpg"} <= set(names)
    for frame in frames:
        assert set(frame.scores) >= {
            "least_confidence",
            "margin",
            "entropy",
            "class_balanced",
            "localization",
        }
        assert "combined uncertainty" in frame.reason
        assert frame.predictions.source == frame.path
        assert all(d.score > 0.25 for d in frame.predictions.detections)
    # Real photos full of people and things: the chosen ones carry real pre-annotations.
    assert sum(len(f.predictions.detections) for f in frames) >= 4
    assert "selected 4 of 10 frames" in result.stderr


def test_yolox_boxes_carry_every_class_score_and_are_scored_on_them(yolox_package: Path) -> None:
    detector = load_detector(yolox_package, DetectorSettings(score_threshold=0.05))
    (found,) = detector.detect([read_image(fixture_path("images/bus.jpg"))])
    assert len(found) >= 4
    assert found.class_scores is not None
    assert found.class_scores.shape == (len(found), len(detector.class_names)) == (len(found), 80)
    np.testing.assert_array_equal(found.class_scores.argmax(axis=1), found.class_ids)
    np.testing.assert_allclose(found.class_scores.max(axis=1), found.scores, rtol=1e-6)
    # The other classes' shares make the boxes more doubtful than their top scores alone say.
    binary = replace(found, class_scores=None)
    assert uncertainty.entropy(found) > uncertainty.entropy(binary)
    assert uncertainty.margin(found) >= uncertainty.margin(binary)


@pytest.mark.parametrize(
    ("strategy", "score"),
    [
        ("least-confidence", "least_confidence"),
        ("margin", "margin"),
        ("entropy", "entropy"),
        ("class-balanced", "class_balanced"),
        ("localization", "localization"),
    ],
    ids=["least-confidence", "margin", "entropy", "class-balanced", "localization"],
)
def test_single_score_strategies_rank_by_their_score(
    yolox_package: Path, pool: Path, tmp_path: Path, strategy: str, score: str
) -> None:
    result = select_frames(pool, yolox_package, 3, strategy, tmp_path)
    values = [f.scores[score] for f in result.frames]  # type: ignore[index]
    assert values == sorted(values, reverse=True)
    assert [f.priority for f in result.frames] == pytest.approx(values, abs=1e-5)


def test_labeled_frames_steer_coreset_and_drop_their_twins(
    yolox_package: Path, pool: Path, tmp_path: Path
) -> None:
    labeled = tmp_path / "labeled"
    labeled.mkdir()
    shutil.copyfile(fixture_path("images/bus.jpg"), labeled / "bus_labeled.jpg")
    result = select_frames(pool, yolox_package, 20, "coreset", tmp_path / "out", labeled_dir=labeled)
    names = {Path(f.path).name for f in result.frames}
    assert names.isdisjoint({"bus.jpg", "bus_copy.jpg"})
    assert result.summary.duplicates_removed == 2
    assert result.summary.selected == 8
    assert all(0.0 < f.scores["diversity"] <= 2.0 for f in result.frames)


def test_a_model_agrees_with_itself(yolox_package: Path, pool: Path, tmp_path: Path) -> None:
    result = select_frames(pool, yolox_package, 3, "disagreement", tmp_path, challenger_dir=yolox_package)
    assert result.summary.challenger == result.summary.model
    assert all(f.scores["disagreement"] == 0.0 for f in result.frames)


@pytest.mark.parametrize(
    ("budget", "strategy", "error", "message"),
    [
        (0, "combined", InvalidInputError, "budget: expected >= 1"),
        (2, "smartest", InvalidInputError, "strategy: expected one of"),
        (2, "disagreement", InvalidInputError, "expected a challenger"),
    ],
    ids=["zero-budget", "unknown-strategy", "disagreement-alone"],
)
def test_bad_requests_fail_before_any_work(
    yolox_package: Path,
    pool: Path,
    tmp_path: Path,
    budget: int,
    strategy: str,
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error, match=message):
        select_frames(pool, yolox_package, budget, strategy, tmp_path)
    assert not (tmp_path / "selection.jsonl").exists()


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("empty-pool", "the pool is empty"),
        ("missing-pool", "no such folder"),
        ("missing-model", "expected a model package"),
        ("zero-budget", "budget: expected >= 1"),
        ("unknown-strategy", "strategy: expected one of"),
        ("no-model", "expected a model package (--model)"),
    ],
    ids=["empty-pool", "missing-pool", "missing-model", "zero-budget", "unknown-strategy", "no-model"],
)
def test_cli_errors_are_one_line_and_exit_2(
    yolox_package: Path, pool: Path, tmp_path: Path, case: str, message: str
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    args = {"--pool": str(pool), "--model": str(yolox_package), "--budget": "2", "--strategy": "combined"}
    if case == "empty-pool":
        args["--pool"] = str(empty)
    elif case == "missing-pool":
        args["--pool"] = str(tmp_path / "nowhere")
    elif case == "missing-model":
        args["--model"] = str(tmp_path / "no-model")
    elif case == "zero-budget":
        args["--budget"] = "0"
    elif case == "no-model":
        del args["--model"]
    else:
        args["--strategy"] = "smartest"
    result = _run("select", *[part for pair in args.items() for part in pair], "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr


def test_missing_pool_and_model_raise_cvops_errors(yolox_package: Path, pool: Path, tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="no such folder"):
        select_frames(tmp_path / "nowhere", yolox_package, 1, "random", tmp_path)
    with pytest.raises(ModelPackageError):
        select_frames(pool, tmp_path, 1, "random", tmp_path)


def test_random_is_reproducible_and_summary_is_json(yolox_package: Path, pool: Path, tmp_path: Path) -> None:
    first = select_frames(pool, yolox_package, 3, "random", tmp_path / "a", seed=5)
    again = select_frames(pool, yolox_package, 3, "random", tmp_path / "b", seed=5)
    assert [f.path for f in first.frames] == [f.path for f in again.frames]
    assert json.loads(first.summary_path.read_text())["seed"] == 5


def test_without_a_model_coreset_picks_by_diversity_and_carries_no_pre_annotations(
    pool: Path, tmp_path: Path
) -> None:
    labeled = tmp_path / "dataset" / "images" / "train"  # a dataset's split folder: found recursively
    labeled.mkdir(parents=True)
    shutil.copyfile(fixture_path("images/bus.jpg"), labeled / "bus_labeled.jpg")
    result = select_frames(pool, None, 3, "coreset", tmp_path / "out", labeled_dir=tmp_path / "dataset")
    assert result.summary.model == "none"
    assert result.summary.labeled_size == 1
    assert result.summary.duplicates_removed == 2
    for frame in result.frames:
        assert frame.predictions.detections == []
        assert set(frame.scores) == {"diversity"}


@pytest.mark.parametrize("strategy", ["combined", "entropy"], ids=["combined", "entropy"])
def test_model_based_strategies_without_a_model_are_refused(
    pool: Path, tmp_path: Path, strategy: str
) -> None:
    with pytest.raises(InvalidInputError, match="expected a model package"):
        select_frames(pool, None, 2, strategy, tmp_path)
