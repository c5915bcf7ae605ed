"""The continuous-training loop: data, active learning, labels, DDP, gated release, canary, A/B gate.

Run it here with ``cvops pipeline run-local`` (kfp.local), compile it with ``cvops pipeline
compile`` or submit it to Kubeflow with ``cvops pipeline submit --host URL``.
"""

from kfp import dsl

from components.ab_gate.component import ab_gate
from components.annotate_simulated.component import annotate_simulated
from components.deploy_canary.component import deploy_canary
from components.evaluate_model.component import evaluate_model
from components.export_model.component import export_model
from components.pull_dataset.component import pull_dataset
from components.push_to_labelstudio.component import push_to_labelstudio
from components.register_model.component import register_model
from components.score_pool.component import score_pool
from components.select_samples.component import select_samples
from components.sync_labels.component import sync_labels
from components.train_ddp.component import train_ddp


@dsl.pipeline(
    name="continuous-training",
    description="Select frames by active learning, label them in Label Studio, fine-tune with DDP, "
    "export behind the accuracy gate, register a challenger, canary it and promote or roll back.",
)
def continuous_training(
    seed_dataset_uri: str,
    pool_dir: str,
    heldout_uri: str,
    replay_source: str,
    model_name: str = "cvops-detector",
    tracking_uri: str = "",
    labelstudio_url: str = "",
    labelstudio_document_root: str = "",
    labelstudio_project: str = "cvops-detector",
    feature_repo: str = "",
    budget: int = 24,
    strategy: str = "combined",
    simulated_labels_uri: str = "",
    min_labeled: int = 24,
    label_timeout_s: float = 3600.0,
    epochs: int = 10,
    imgsz: int = 160,
    batch: int = 16,
    nproc: int = 2,
    seed: int = 0,
    calibration_dir: str = "",
    max_map_drop: float = 0.01,
    canary_percent: int = 20,
    deploy_target: str = "local",
    replay_frames: int = 60,
    code_revision: str = "",
) -> str:
    """Run one iteration of the loop; returns the A/B gate's decision (promote or rollback)."""
    # The Label Studio every labeling step talks to, and the registry every model step reads.
    labelstudio = {
        "labelstudio_url": labelstudio_url,
        "labelstudio_document_root": labelstudio_document_root,
        "project": labelstudio_project,
    }
    registry = {"model_name": model_name, "tracking_uri": tracking_uri}
    pulled = pull_dataset(seed_uri=seed_dataset_uri, **registry)
    scored = score_pool(pool_dir=pool_dir, feature_repo=feature_repo, **registry)
    selected = select_samples(
        pool_dir=pool_dir,
        pool_features=scored.outputs["features"],
        labeled=pulled.outputs["dataset"],
        feature_repo=feature_repo,
        budget=budget,
        strategy=strategy,
        seed=seed,
        **registry,
    )
    pushed = push_to_labelstudio(
        selection=selected.outputs["selection"], labeled=pulled.outputs["dataset"], **labelstudio
    )
    annotated = annotate_simulated(ground_truth_uri=simulated_labels_uri, **labelstudio).after(pushed)
    synced = sync_labels(
        base=pulled.outputs["dataset"], min_completed=min_labeled, timeout_s=label_timeout_s, **labelstudio
    ).after(annotated)
    trained = train_ddp(
        dataset=synced.outputs["dataset"],
        epochs=epochs,
        imgsz=imgsz,
        batch=batch,
        nproc=nproc,
        seed=seed,
        **registry,
    )
    exported = export_model(
        checkpoint_path=trained.outputs["checkpoint_path"],
        heldout_uri=heldout_uri,
        imgsz=imgsz,
        calibration_dir=calibration_dir,
        max_map_drop=max_map_drop,
    )
    evaluated = evaluate_model(packages=exported.outputs["packages"], heldout_uri=heldout_uri)
    registered = register_model(
        packages=exported.outputs["packages"],
        evaluation=evaluated.outputs["report"],
        dataset=synced.outputs["dataset"],
        training_run_id=trained.outputs["mlflow_run_id"],
        code_revision=code_revision,
        pipeline_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        **registry,
    )
    deployed = deploy_canary(canary_percent=canary_percent, target=deploy_target, **registry).after(
        registered
    )
    gated = ab_gate(
        heldout_uri=heldout_uri,
        replay_source=replay_source,
        replay_frames=replay_frames,
        target=deploy_target,
        **registry,
    ).after(deployed)
    return gated.outputs["decision"]
