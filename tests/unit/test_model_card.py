"""Model cards rendered from a registered version's record (no MLflow involved)."""

from __future__ import annotations

from datetime import UTC, datetime

from cvops.registry.model_card import render_model_card
from cvops.registry.records import Lineage, RegisteredVersion


def record(**changes: object) -> RegisteredVersion:
    fields: dict[str, object] = {
        "name": "detector",
        "version": 4,
        "aliases": ("champion",),
        "run_id": "run42",
        "source": "mlflow-artifacts:/1/run42/artifacts/package",
        "created_at": datetime(2026, 3, 1, 12, 30, tzinfo=UTC),
        "lineage": Lineage(
            dataset_version="traffic@v7", dataset_uri="s3://data/traffic/v7", code_revision="abc"
        ),
        "metrics": {
            "map50": 0.61,
            "per_class/car/ap50": 0.8,
            "per_class/bus/ap50": 0.4,
            "variant/int8/latency_ms_p50": 5.25,
        },
        "variants": ("int8", "fp16"),
        "package": {
            "family": "yolov8",
            "input_size": "640x384",
            "class_count": "2",
            "class_names": "car,bus",
        },
        "is_complete": True,
    }
    return RegisteredVersion(**{**fields, **changes})  # type: ignore[arg-type]


def test_card_holds_data_metrics_classes_variants_and_filled_template() -> None:
    card = render_model_card(record())
    markdown = card.markdown
    assert markdown.startswith("# Model card: detector version 4\n")
    for expected in (
        "| Dataset version | traffic@v7 |",
        "| Dataset URI | s3://data/traffic/v7 |",
        "| map50 | 0.61 |",
        "| Class | ap50 |",
        "| bus | 0.4 |",
        "| Variant | latency_ms_p50 |",
        "| int8 | 5.25 |",
        "| fp16 |  |",
        "## Intended use",
        "## Limitations",
        "detects car, bus in images resized to 640x384 pixels",
        "Measured only on data from traffic@v7",
        "`models:/detector@champion`",
    ):
        assert expected in markdown, expected
    assert "$" not in markdown
    assert "<td>traffic@v7</td>" in card.html
    assert "<code>models:/detector@champion</code>" in card.html
    assert card.html.count("<table>") == 5


def test_missing_values_read_unknown_and_sections_without_data_are_left_out() -> None:
    card = render_model_card(record(lineage=Lineage(), metrics={}, variants=(), package={}))
    assert "| Dataset version | unknown |" in card.markdown
    assert "No metrics were recorded" in card.markdown
    assert "Per-class results" not in card.markdown
    assert "Export variants" not in card.markdown


def test_custom_template_and_html_escaping() -> None:
    template = "## Intended use\n\nFor <b>$name</b> only; trained on $dataset_version.\n\n"
    template += "- $unknown_placeholder stays"
    card = render_model_card(record(name="a-b"), template)
    assert "For <b>a-b</b> only; trained on traffic@v7." in card.markdown
    assert "For &lt;b&gt;a-b&lt;/b&gt; only" in card.html
    assert "<li>$unknown_placeholder stays</li>" in card.html
