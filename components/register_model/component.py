"""Register the gated package in MLflow with its lineage and make it the challenger."""

from kfp import dsl

from components import CVOPS_IMAGE


@dsl.component(base_image=CVOPS_IMAGE, install_kfp_package=False)
def register_model(
    packages: dsl.Input[dsl.Model],
    evaluation: dsl.Input[dsl.HTML],
    dataset: dsl.Input[dsl.Dataset],
    model_name: str,
    tracking_uri: str,
    training_run_id: str,
    code_revision: str,
    pipeline_run_id: str,
) -> int:
    """Register ``packages`` (FP32 + accepted variants) as the challenger; return its version number."""
    from pathlib import Path

    from cvops.loop.release import register_gated
    from cvops.registry.records import Lineage

    lineage = Lineage(
        dataset_version=dataset.metadata.get("version_id"),
        dataset_uri=dataset.uri,
        training_run_id=training_run_id or None,
        code_revision=code_revision or None,
        pipeline_run_id=pipeline_run_id or None,
    )
    record = register_gated(
        Path(packages.path), model_name, tracking_uri or None, Path(evaluation.path), lineage
    )
    return record.version
