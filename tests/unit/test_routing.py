from __future__ import annotations

import pytest

from cvops.contracts.detections import DetectionRecord
from cvops.contracts.wire import FrameResult
from cvops.errors import InvalidInputError
from cvops.serving.routing import RouterConfig, Variant, choose_variant, compare_frames, stream_bucket


def _result(*boxes: tuple[float, float, float, float, str, float]) -> FrameResult:
    records = [DetectionRecord(xyxy=b[:4], score=b[5], class_id=0, class_name=b[4]) for b in boxes]
    empty = {"stream_id": None, "frame_index": None, "timestamp": None, "timings_ms": {}}
    return FrameResult(model_name="m", model_version="1", width=100, height=100, detections=records, **empty)


@pytest.mark.parametrize(
    ("percent", "expected"),
    [(0, {Variant.CHAMPION}), (100, {Variant.CHALLENGER})],
    ids=["all-champion", "all-challenger"],
)
def test_extreme_splits(percent: int, expected: set[Variant]) -> None:
    assert {choose_variant(f"cam-{i}", percent, 0.5) for i in range(50)} == expected


def test_split_is_sticky_per_stream_and_close_to_the_percent() -> None:
    streams = [f"cam-{i}" for i in range(2000)]
    first = [choose_variant(s, 30, 0.0) for s in streams]
    again = [choose_variant(s, 30, 0.99) for s in streams]
    assert first == again
    share = first.count(Variant.CHALLENGER) / len(streams)
    assert 0.26 < share < 0.34
    assert stream_bucket("cam-1") == stream_bucket("cam-1")


def test_requests_without_stream_use_the_draw() -> None:
    assert choose_variant(None, 10, 0.05) is Variant.CHALLENGER
    assert choose_variant(None, 10, 0.5) is Variant.CHAMPION


def test_config_reads_an_inference_service() -> None:
    manifest = {
        "kind": "InferenceService",
        "metadata": {"annotations": {"cvops.io/shadow-traffic-percent": "20"}},
        "spec": {"predictor": {"canaryTrafficPercent": 10}},
    }
    assert RouterConfig.from_inference_service(manifest) == RouterConfig(
        canaryTrafficPercent=10, shadowTrafficPercent=20
    )
    with pytest.raises(InvalidInputError, match="InferenceService"):
        RouterConfig.from_inference_service({"kind": "Deployment"})
    with pytest.raises(InvalidInputError):
        RouterConfig.from_inference_service(
            {"kind": "InferenceService", "spec": {"predictor": {"canaryTrafficPercent": 150}}}
        )


def test_compare_frames_reports_iou_class_agreement_and_score_shift() -> None:
    champion = _result((0, 0, 10, 10, "car", 0.9), (50, 50, 60, 60, "person", 0.8))
    challenger = _result(
        (0, 0, 10, 10, "truck", 0.7), (50, 50, 60, 60, "person", 0.8), (80, 80, 90, 90, "dog", 0.5)
    )
    agreement = compare_frames(champion, challenger)
    assert agreement.matched_fraction == pytest.approx(2 / 3)
    assert agreement.mean_iou == pytest.approx(1.0)
    assert agreement.class_agreement == pytest.approx(0.5)
    assert agreement.score_shift == pytest.approx(-0.1)
    assert compare_frames(_result(), _result()).matched_fraction == 1.0
