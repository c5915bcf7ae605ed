from __future__ import annotations

import json
from pathlib import Path

import pytest

from cvops.contracts.model_package import (
    ModelPackageSpec,
    default_preprocessing,
    read_model_package,
    write_model_package_spec,
)
from cvops.errors import ModelPackageError


def _spec(**overrides: object) -> ModelPackageSpec:
    fields: dict[str, object] = {
        "name": "m",
        "family": "yolov8",
        "input_height": 320,
        "input_width": 320,
        "class_names": ("a", "b"),
        "preprocessing": default_preprocessing("yolov8"),
        "source": "test",
    }
    fields.update(overrides)
    return ModelPackageSpec.model_validate(fields)


def test_round_trip_through_model_json(tmp_path: Path) -> None:
    spec = _spec()
    write_model_package_spec(tmp_path, spec)
    (tmp_path / "model.onnx").write_bytes(b"onnx")
    assert read_model_package(tmp_path) == spec
    assert read_model_package(tmp_path).task == "detect"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"family": "yolov99"}, "family"),
        ({"input_height": 8}, "input_height"),
        ({"class_names": []}, "class_names"),
        ({"surprise": 1}, "surprise"),
        ({"file": "../model.onnx"}, "bare file name"),
    ],
    ids=["unknown-family", "tiny-input", "no-classes", "extra-field", "path-escape"],
)
def test_broken_model_json_names_file_and_field(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    data = json.loads(_spec().model_dump_json())
    data.update(change)
    (tmp_path / "model.json").write_text(json.dumps(data))
    with pytest.raises(ModelPackageError, match=message) as error:
        read_model_package(tmp_path)
    assert str(tmp_path / "model.json") in str(error.value)


def test_missing_model_file_is_reported(tmp_path: Path) -> None:
    write_model_package_spec(tmp_path, _spec())
    with pytest.raises(ModelPackageError, match=r"'model\.onnx' named in model\.json is missing"):
        read_model_package(tmp_path)


def test_folder_without_model_json_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ModelPackageError, match=r"expected a model package with model\.json"):
        read_model_package(tmp_path)
