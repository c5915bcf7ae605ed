"""One export writes every variant; the FP32 package carries its weights back out of the registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from cvops.cli.app import main
from cvops.contracts.model_package import read_model_package
from cvops.data.synthetic import SyntheticDataset
from cvops.errors import InvalidInputError
from cvops.registry.mlflow_registry import ModelRegistry, embedded_tracking_uri
from cvops.training.ddp import check_model_source
from cvops.training.variants import CHECKPOINT_FILE, export_variants
from tests.integration.conftest import TRAIN_IMGSZ

pytestmark = pytest.mark.integration


def test_export_all_writes_each_variant_and_names_what_it_skipped(
    trained_checkpoint: Path, synthetic_dataset: SyntheticDataset, tmp_path: Path
) -> None:
    calibration = synthetic_dataset.root / "images" / "train"
    exported = export_variants(
        str(trained_checkpoint),
        tmp_path / "out",
        TRAIN_IMGSZ,
        calibration_dir=calibration,
        calibration_images=8,
    )
    assert read_model_package(exported.reference).precision == "fp32"
    assert (exported.reference / CHECKPOINT_FILE).read_bytes() == trained_checkpoint.read_bytes()
    assert {name: read_model_package(path).precision for name, path in exported.variants.items()} == {
        "int8": "int8",
        "fp16": "fp16",
    }
    assert "CUDA" in exported.skipped["trt"] or "not installed" in exported.skipped["trt"]


def test_fine_tuning_source_resolves_from_a_registered_model(
    trained_checkpoint: Path, tmp_path: Path
) -> None:
    exported = export_variants(str(trained_checkpoint), tmp_path / "out", TRAIN_IMGSZ)
    assert exported.skipped["int8"] == "no calibration images given"
    uri = embedded_tracking_uri(tmp_path / "state")
    registry = ModelRegistry(uri, state_dir=tmp_path / "state")
    registry.register(exported.reference, "detector", variants=exported.variants)
    registry.promote("detector", 1, why="first model", who="test")
    resolved = Path(check_model_source("models:/detector@champion", uri))
    assert resolved.suffix == ".pt"
    assert resolved.read_bytes() == trained_checkpoint.read_bytes()


def test_a_registered_package_without_weights_cannot_be_fine_tuned(
    yolox_package: Path, tmp_path: Path
) -> None:
    uri = embedded_tracking_uri(tmp_path / "state")
    ModelRegistry(uri, state_dir=tmp_path / "state").register(yolox_package, "published")
    with pytest.raises(InvalidInputError, match=r"has no checkpoint\.pt"):
        check_model_source("models:/published/1", uri)


def test_cli_export_all_rejects_a_missing_checkpoint_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["export", str(tmp_path / "nope.pt"), "--format", "all", "--out", str(tmp_path / "o")])
    assert code == 2
    assert "nope.pt: no such file" in capsys.readouterr().err
