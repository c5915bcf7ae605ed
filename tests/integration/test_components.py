"""Each Kubeflow component's function, called directly (``python_func``) on real data, and compiled."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kfp import compiler, dsl

from cvops.data.synthetic import SyntheticDataset, generate_scenes
from cvops.registry.mlflow_registry import ModelRegistry, embedded_tracking_uri
from tests.conftest import REPO_ROOT
from tests.integration.conftest import TRAIN_IMGSZ

pytestmark = pytest.mark.integration

COMPONENTS = sorted(p.name for p in (REPO_ROOT / "components").iterdir() if (p / "component.py").is_file())


def _component(name: str) -> object:
    import importlib

    return getattr(importlib.import_module(f"components.{name}.component"), name)


@pytest.mark.parametrize("name", COMPONENTS)
def test_component_compiles_on_our_image_without_pip(name: str, tmp_path: Path) -> None:
    target = tmp_path / f"{name}.yaml"
    compiler.Compiler().compile(_component(name), str(target))
    text = target.read_text()
    assert "ghcr.io/cvops/cvops-components" in text
    assert "pip install" not in text  # install_kfp_package=False, no packages_to_install


def test_every_component_folder_documents_itself() -> None:
    for name in COMPONENTS:
        readme = REPO_ROOT / "components" / name / "README.md"
        assert readme.is_file(), f"components/{name}/README.md is missing"
        assert name in readme.read_text()


def _artifact(kind: type[dsl.Artifact], path: Path) -> dsl.Artifact:
    artifact = kind(uri=str(path))
    return artifact


def test_pull_dataset_takes_the_seed_before_any_champion(tmp_path: Path) -> None:
    from components.pull_dataset.component import pull_dataset

    seed = generate_scenes(tmp_path / "seed", 6, 3, 64, seed=1)
    out = _artifact(dsl.Dataset, tmp_path / "pulled")
    uri = embedded_tracking_uri(tmp_path / "state")
    version = pull_dataset.python_func(seed_uri=str(seed.root), model_name="m", tracking_uri=uri, dataset=out)
    assert len(version) == 12
    assert out.metadata["version_id"] == version
    assert out.metadata["images"] == 9
    assert (tmp_path / "pulled" / "manifest.json").is_file()


def test_export_evaluate_and_register_chain(
    trained_checkpoint: Path, synthetic_dataset: SyntheticDataset, tmp_path: Path
) -> None:
    from components.evaluate_model.component import evaluate_model
    from components.export_model.component import export_model
    from components.register_model.component import register_model

    packages = _artifact(dsl.Model, tmp_path / "packages")
    export_metrics = _artifact(dsl.Metrics, tmp_path / "export-metrics")
    accepted = export_model.python_func(
        checkpoint_path=str(trained_checkpoint),
        heldout_uri=str(synthetic_dataset.coco_val),
        imgsz=TRAIN_IMGSZ,
        calibration_dir=str(synthetic_dataset.root / "images" / "train"),
        max_map_drop=0.02,
        packages=packages,
        metrics=export_metrics,
    )
    gate = json.loads((tmp_path / "packages" / "gate.json").read_text())
    assert set(accepted.split(",")) - {""} == set(gate["accepted"])
    assert set(gate["accepted"]) | set(gate["rejected"]) == {"int8", "fp16"}
    assert "trt" in gate["skipped"]

    report = _artifact(dsl.HTML, tmp_path / "evaluation")
    eval_metrics = _artifact(dsl.Metrics, tmp_path / "eval-metrics")
    map_50_95 = evaluate_model.python_func(
        packages=packages, heldout_uri=str(synthetic_dataset.coco_val), report=report, metrics=eval_metrics
    )
    assert 0.0 < map_50_95 <= 1.0
    assert (tmp_path / "evaluation" / "report.html").is_file()

    dataset = _artifact(dsl.Dataset, synthetic_dataset.root)
    dataset.metadata["version_id"] = "abc123"
    uri = embedded_tracking_uri(tmp_path / "state")
    version = register_model.python_func(
        packages=packages,
        evaluation=report,
        dataset=dataset,
        model_name="detector",
        tracking_uri=uri,
        training_run_id="",
        code_revision="deadbeef",
        pipeline_run_id="run-1",
    )
    record = ModelRegistry(uri).show("detector", "challenger")
    assert record.version == version == 1
    assert record.lineage.dataset_version == "abc123"
    assert record.lineage.pipeline_run_id == "run-1"
    assert record.metrics["map_50_95"] == pytest.approx(map_50_95)
    assert set(record.variants) == set(gate["accepted"])
