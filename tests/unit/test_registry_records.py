"""Registry records: model URIs, lineage and version tags, metric checks."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cvops.contracts.model_package import ModelPackageSpec, default_preprocessing
from cvops.errors import InvalidInputError
from cvops.registry.records import (
    REGISTRATION_COMPLETE,
    REGISTRATION_TAG,
    Lineage,
    ModelRef,
    RegisteredVersion,
    check_metrics,
    version_tags,
)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("models:/detector@champion", ModelRef("detector", alias="champion")),
        ("models:/detector/12", ModelRef("detector", version=12)),
        ("models:/yolox-nano.v2@challenger", ModelRef("yolox-nano.v2", alias="challenger")),
    ],
    ids=["alias", "version", "dotted-name"],
)
def test_model_uri_parses(uri: str, expected: ModelRef) -> None:
    assert ModelRef.parse(uri) == expected
    assert expected.uri == uri


@pytest.mark.parametrize(
    "uri",
    ["models:/detector", "models:/detector/latest", "models:/detector/0", "runs:/abc/model", "models:/a/1@b"],
    ids=["bare", "latest", "version-0", "runs-uri", "both"],
)
def test_bad_model_uri_is_refused(uri: str) -> None:
    with pytest.raises(InvalidInputError):
        ModelRef.parse(uri)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (3, ModelRef("m", version=3)),
        ("3", ModelRef("m", version=3)),
        ("champion", ModelRef("m", alias="champion")),
    ],
    ids=["int", "digits", "alias"],
)
def test_model_ref_of_version_or_alias(given: str | int, expected: ModelRef) -> None:
    assert ModelRef.of("m", given) == expected


def test_lineage_round_trips_through_tags_and_skips_unknown_fields() -> None:
    lineage = Lineage(
        dataset_version="v3", dataset_uri="s3://d/v3", code_revision="abc", pipeline_run_id="p-1"
    )
    tags = lineage.to_tags()
    assert tags == {
        "cvops.lineage.dataset_version": "v3",
        "cvops.lineage.dataset_uri": "s3://d/v3",
        "cvops.lineage.code_revision": "abc",
        "cvops.lineage.pipeline_run_id": "p-1",
    }
    assert Lineage.from_tags({**tags, "cvops.lineage.future_field": "x", "other": "y"}) == lineage


@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        ({"map50": float("nan")}, "finite"),
        ({"map50": float("inf")}, "finite"),
        ({"map@50": 0.5}, "metric name"),
        ({"a/../b": 0.5}, "metric name"),
    ],
    ids=["nan", "inf", "bad-character", "dot-dot"],
)
def test_bad_metrics_are_refused(metrics: dict[str, float], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        check_metrics(metrics)


def test_version_record_reads_its_tags_back() -> None:
    spec = ModelPackageSpec(
        name="yolox_nano",
        family="yolox",
        input_height=416,
        input_width=416,
        class_names=("person", "car"),
        preprocessing=default_preprocessing("yolox"),
        source="fixture",
    )
    lineage = Lineage(dataset_version="v1")
    tags = version_tags(spec, lineage, {"map50": 0.5, "per_class/car/ap50": 0.25}, ("int8",))
    created = datetime(2026, 1, 1, tzinfo=UTC)
    record = RegisteredVersion.from_tags("m", 2, ("champion",), "run", "src", created, tags)
    assert record.lineage == lineage
    assert record.metrics == {"map50": 0.5, "per_class/car/ap50": 0.25}
    assert record.variants == ("int8",)
    assert (record.package["input_size"], record.package["class_names"]) == ("416x416", "person,car")
    assert not record.is_complete
    complete = RegisteredVersion.from_tags(
        "m", 2, (), "run", "src", created, {**tags, REGISTRATION_TAG: REGISTRATION_COMPLETE}
    )
    assert complete.is_complete
    assert complete.uri == "models:/m/2"
