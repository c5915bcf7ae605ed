"""The gate's evidence files: JSON without NaN, and an HTML page for full or partial evidence."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cvops.rollout.report import write_evidence


def _interval(estimate: float) -> dict[str, float]:
    return {"estimate": estimate, "low": estimate - 0.1, "high": estimate + 0.1, "confidence": 0.95}


FULL: dict[str, Any] = {
    "model_name": "det<script>",
    "decision": "rollback",
    "at": "2026-12-02T07:00:00+00:00",
    "who": "ci",
    "champion_version": 1,
    "challenger_version": 2,
    "config": {"confidence": 0.95, "n_resamples": 300},
    "checks": [
        {"name": "map_50_95_delta", "is_passed": False, "detail": "lower CI bound -0.2 (needs >= -0.01)"}
    ],
    "heldout": {
        "image_count": 8,
        "champion": {"map_50_95": 0.57, "map_50": 0.75, "recall_50": 0.47},
        "challenger": {"map_50_95": 0.41, "map_50": 0.6, "recall_50": 0.3},
        "map_50_95_delta": _interval(-0.16),
        "recall_50_delta": _interval(-0.17),
        "per_class": [
            {
                "class_name": "bowl",
                "gt_count": 3,
                "champion_ap_50_95": 0.88,
                "challenger_ap_50_95": 0.45,
                "delta": -0.43,
            }
        ],
    },
    "live": {
        "frames": 50,
        "wall_s": 4.2,
        "requests": {"champion": 26, "challenger": 24},
        "p50_ms": {"champion": 30.0},
        "p99_ms": {"champion": _interval(80.0)},
        "throughput_per_s": {"total": 11.9},
        "mean_score": {},
        "score_ks": float("nan"),
        "mean_score_shift": None,
        "shadow": {"frames": 26, "mean": {"mean_iou": 0.9}},
    },
    "actions": ["challenger alias v2 removed"],
}


def test_full_evidence_writes_json_and_html(tmp_path: Path) -> None:
    json_path, html_path = write_evidence(tmp_path / "out", FULL)
    data = json.loads(json_path.read_text())
    assert data["live"]["score_ks"] is None  # NaN is not JSON
    assert data["heldout"]["map_50_95_delta"]["estimate"] == -0.16
    page = html_path.read_text()
    assert "ROLLBACK" in page
    assert "det&lt;script&gt;" in page
    assert "<script>" not in page
    assert "-0.16 [-0.26, -0.06]" in page
    assert "bowl" in page
    assert "challenger alias v2 removed" in page


def test_partial_evidence_of_a_first_model_still_renders(tmp_path: Path) -> None:
    partial = {key: FULL[key] for key in ("model_name", "decision", "at", "who", "checks", "actions")}
    partial |= {
        "champion_version": None,
        "challenger_version": 1,
        "heldout": {"challenger": {"map_50_95": 0.3}},
    }
    _, html_path = write_evidence(tmp_path, partial)
    page = html_path.read_text()
    assert "no champion" in page
    assert "0.3" in page
    assert "Replayed traffic" not in page
