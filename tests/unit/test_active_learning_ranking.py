"""From per-frame scores to an ordered pick list, one rule per strategy, with reasons."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from cvops.active_learning import uncertainty
from cvops.active_learning.ranking import (
    FrameScores,
    class_balanced,
    percentile_ranks,
    priority_order,
    rank_frames,
)
from cvops.active_learning.records import STRATEGIES, SelectedFrame
from cvops.contracts.detections import ImageDetections
from cvops.detection.types import Detections
from cvops.errors import InvalidInputError

NO_LABELS = np.zeros((0, 1), np.float32)


def _scores(**values: list[float]) -> FrameScores:
    n = len(next(iter(values.values())))
    return FrameScores(
        values={name: np.asarray(column, np.float64) for name, column in values.items()},
        descriptors=np.arange(n, dtype=np.float32).reshape(n, 1),
        dhashes=np.zeros(n, np.uint64),
        phashes=np.zeros(n, np.uint64),
    )


SCORES = _scores(
    least_confidence=[0.1, 0.9, 0.5, 0.3],
    margin=[0.8, 0.1, 0.2, 0.4],
    entropy=[1.0, 3.0, 2.0, 0.0],
    class_balanced=[0.5, 0.9, 0.7, 0.1],
    localization=[0.0, 0.1, 0.9, 0.2],
)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([3.0, 1.0, 2.0], [5 / 6, 1 / 6, 3 / 6]),
        ([0.0, 0.0], [0.5, 0.5]),
        ([1.0, 1.0, 2.0], [1 / 3, 1 / 3, 5 / 6]),
    ],
    ids=["distinct", "all-equal", "ties-share"],
)
def test_percentile_ranks_use_mid_ranks(values: list[float], expected: list[float]) -> None:
    np.testing.assert_allclose(percentile_ranks(np.asarray(values)), expected)


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("least-confidence", [1, 2]),
        ("margin", [0, 3]),
        ("entropy", [1, 2]),
        ("class-balanced", [1, 2]),
        ("localization", [2, 3]),
    ],
    ids=["least-confidence", "margin", "entropy", "class-balanced", "localization"],
)
def test_single_score_strategies_pick_the_highest_scores(strategy: str, expected: list[int]) -> None:
    picks = rank_frames(SCORES, strategy, 2, NO_LABELS, seed=0)  # type: ignore[arg-type]
    assert [p.index for p in picks] == expected
    assert strategy.replace("-", " ") in picks[0].reason


def test_candidates_mask_excludes_frames() -> None:
    mask = np.array([True, False, True, True])
    picks = rank_frames(SCORES, "entropy", 2, NO_LABELS, seed=0, candidates=mask)
    assert [p.index for p in picks] == [2, 0]


def test_random_is_seeded_and_draws_only_candidates() -> None:
    mask = np.array([True, True, False, True])
    first = [p.index for p in rank_frames(SCORES, "random", 3, NO_LABELS, seed=7, candidates=mask)]
    again = [p.index for p in rank_frames(SCORES, "random", 3, NO_LABELS, seed=7, candidates=mask)]
    assert first == again
    assert sorted(first) == [0, 1, 3]


def test_combined_starts_with_the_most_uncertain_then_spreads_out() -> None:
    # Combined uncertainty (mean percentile of class balance and localization): frame 0 = 0.25,
    # frame 1 = 0.625, frame 2 = 0.75, frame 3 = 0.375. Frame 1 sits right next to frame 2.
    scores = FrameScores(
        values=SCORES.values,
        descriptors=np.array([[0.0], [2.05], [2.0], [3.0]], np.float32),
        dhashes=SCORES.dhashes,
        phashes=SCORES.phashes,
    )
    picks = rank_frames(scores, "combined", 3, NO_LABELS, seed=0)
    # After frame 2, k-center among all four (the shortlist is 4 x budget): frame 0 (2.0 away),
    # then frame 3 (1.0 away) before frame 1 (0.05 away).
    assert [p.index for p in picks] == [2, 0, 3]
    assert picks[0].priority == pytest.approx(0.75)
    assert "combined uncertainty 0.75" in picks[0].reason
    assert "first pick" in picks[0].reason
    assert "distance 2.00" in picks[1].reason


def test_combined_spreads_over_the_most_uncertain_frames_only() -> None:
    # Ten frames, uncertainty falling with the index; frames 0-7 sit in one tight run (copies of
    # one busy scene), frames 8 and 9 are far away but the least uncertain. Budget 2: the
    # shortlist holds the 8 most uncertain, so the second pick is the far end of the run: frame 6,
    # since frame 7 at the very end has fewer close neighbours (typicality 2/3: 0.07 * 2/3 < 0.06).
    n = 10
    scores = FrameScores(
        values={"class_balanced": np.linspace(1.0, 0.1, n)},
        descriptors=np.array([[0.01 * i] for i in range(8)] + [[5.0], [9.0]], np.float32),
        dhashes=np.zeros(n, np.uint64),
        phashes=np.zeros(n, np.uint64),
    )
    picks = rank_frames(scores, "combined", 2, NO_LABELS, seed=0)
    assert [p.index for p in picks] == [0, 6]
    assert "among the 8 most uncertain" in picks[1].reason


def test_combined_passes_over_a_one_off_frame_for_a_typical_one() -> None:
    # Two equally uncertain candidates after frame 0 is labeled: frame 1 a one-off far away
    # (distance 4), frame 2 in a dense group (distance 3). Plain k-center takes frame 1.
    descriptors = np.array([[0.0], [4.0], [3.0], [3.01], [3.02], [3.03], [0.01], [0.02]], np.float32)
    n = len(descriptors)
    scores = FrameScores(
        values={"class_balanced": np.array([0.0, 1.0, 1.0, 0.1, 0.1, 0.1, 0.1, 0.1])},
        descriptors=descriptors,
        dhashes=np.zeros(n, np.uint64),
        phashes=np.zeros(n, np.uint64),
    )
    candidates = np.array([False, True, True, False, False, False, False, False])
    picks = rank_frames(scores, "combined", 1, descriptors[:1], seed=0, candidates=candidates)
    assert [p.index for p in picks] == [2]
    assert "typicality 1.00" in picks[0].reason
    assert [
        p.index for p in rank_frames(scores, "coreset", 1, descriptors[:1], seed=0, candidates=candidates)
    ] == [1]


def test_coreset_counts_labeled_frames_as_chosen() -> None:
    labeled = np.array([[0.0]], np.float32)
    picks = rank_frames(SCORES, "coreset", 2, labeled, seed=0)
    assert [p.index for p in picks] == [3, 1]
    assert picks[0].distance == pytest.approx(3.0)


def test_priority_order_puts_the_best_first() -> None:
    assert priority_order(SCORES, "entropy", 0).tolist() == [1, 2, 0, 3]
    assert priority_order(SCORES, "coreset", 0).tolist() == [0, 1, 2, 3]


def test_a_strategy_whose_score_was_not_computed_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="disagreement"):
        rank_frames(SCORES, "disagreement", 1, NO_LABELS, seed=0)


def test_frame_scores_lists_computed_scores_and_the_distance() -> None:
    row = SCORES.frame_scores(1, 0.25)
    assert row == {
        "least_confidence": 0.9,
        "margin": 0.1,
        "entropy": 3.0,
        "class_balanced": 0.9,
        "localization": 0.1,
        "diversity": 0.25,
    }
    assert "diversity" not in SCORES.frame_scores(1, float("inf"))


def test_frame_scores_rejects_a_short_column() -> None:
    with pytest.raises(InvalidInputError, match="expected shape"):
        FrameScores(
            {"entropy": np.zeros(2)},
            np.zeros((3, 1), np.float32),
            np.zeros(3, np.uint64),
            np.zeros(3, np.uint64),
        )


def test_selected_frame_contract_rejects_rank_zero_and_unknown_fields() -> None:
    predictions = ImageDetections(source="a.png", width=4, height=4, model="m", detections=[])
    fields = {
        "path": "a.png",
        "rank": 1,
        "strategy": "combined",
        "priority": 0.5,
        "scores": {},
        "reason": "r",
    }
    frame = SelectedFrame(**fields, predictions=predictions)  # type: ignore[arg-type]
    assert SelectedFrame.model_validate_json(frame.model_dump_json()) == frame
    with pytest.raises(ValidationError):
        SelectedFrame(**(fields | {"rank": 0}), predictions=predictions)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        SelectedFrame(**fields, predictions=predictions, extra=1)  # type: ignore[arg-type]
    assert set(STRATEGIES) >= {"random", "combined", "coreset", "disagreement"}


def test_class_balanced_ranks_each_class_on_its_own_and_keeps_the_best() -> None:
    doubt = np.array([[0.97, 0.0], [0.29, 0.14], [0.29, 0.0015], [1.44, 0.0], [0.0, 0.0]])
    # circle column ranks A..E 0.7, 0.4, 0.4, 0.9, 0 (no doubt); triangle: B 0.9, C 0.7, others 0.
    np.testing.assert_allclose(class_balanced(doubt), [0.7, 0.9, 0.7, 0.9, 0.0])


def test_class_balanced_rejects_a_doubt_table_without_classes() -> None:
    with pytest.raises(InvalidInputError, match="expected shape"):
        class_balanced(np.zeros((3, 0)))


def test_a_faint_new_class_ranks_high_under_class_balanced_but_not_under_entropy() -> None:
    # A detector that knows circles well; triangles are new, seen only as faint class scores.
    frames = {
        "doubtful circle": [[0.6, 0.0]],
        "sure circle, triangle hint": [[0.95, 0.02]],
        "sure circle": [[0.95, 1e-4]],
        "two doubtful circles": [[0.8, 0.0], [0.8, 0.0]],
    }
    detections = [
        Detections.from_arrays(
            [[0, 0, 10, 10]] * len(rows), np.max(rows, axis=1), np.argmax(rows, axis=1),
            ("circle", "triangle"), class_scores=np.asarray(rows, np.float32),
        )
        for rows in frames.values()
    ]  # fmt: skip
    names = list(frames)
    by_entropy = np.argsort([-uncertainty.entropy(d) for d in detections], kind="stable")
    balanced = class_balanced(np.stack([uncertainty.class_doubt(d, 2) for d in detections]))
    by_balance = np.argsort(-balanced, kind="stable")
    assert [names[i] for i in by_entropy[:2]] == ["two doubtful circles", "doubtful circle"]
    assert {names[i] for i in by_balance[:2]} == {"two doubtful circles", "sure circle, triangle hint"}
