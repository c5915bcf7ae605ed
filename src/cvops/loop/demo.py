"""``cvops demo``: one iteration of the continuous-training loop, locally, on the embedded defaults.

It prepares what a cluster would already have (the demo's data, a local Label Studio, a Feast
repository on sqlite, the MLflow registry on sqlite under the state dir), runs
``pipelines/continuous_training.py`` with kfp.local and writes the run report. Every call
continues the loop: the second run starts from the champion the first one promoted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cvops.loop.demo_data import write_demo_source
from cvops.orchestration.kfp_runner import LocalRun, ParamValue

DEMO_MODEL_NAME = "cvops-demo-detector"
DEMO_PROJECT = "cvops-demo"


@dataclass(frozen=True, slots=True)
class DemoSettings:
    """Sizes of one demo iteration; the defaults fit ~10 minutes on 2 CPU cores.

    Attributes:
        pipeline_file: ``pipelines/continuous_training.py``.
        feature_declarations: The ``feature_repo/`` folder (Feast declarations).
        labelstudio_venv: Venv holding the Label Studio server (``make labelstudio``).
        out_dir: Where the run report goes.
        budget: Frames sent to Label Studio per iteration.
        epochs: Fine-tuning epochs.
        nproc: DDP ranks.
        canary_percent: Share of the replayed traffic the challenger answers; an even split gives
            the A/B gate the most evidence from a short replay (it needs 10 answers per variant).
        replay_frames: Frames replayed through the canary router.
        labeled_count: Seed training images.
        pool_count: Unlabeled pool images.
        heldout_count: Held-out images.
    """

    pipeline_file: Path = Path("pipelines/continuous_training.py")
    feature_declarations: Path = Path("feature_repo")
    labelstudio_venv: Path = Path(".venv-labelstudio")
    out_dir: Path = Path("demo-output/loop")
    budget: int = 32
    epochs: int = 25
    nproc: int = 2
    canary_percent: int = 50
    replay_frames: int = 60
    labeled_count: int = 96
    pool_count: int = 240
    heldout_count: int = 60


@dataclass(frozen=True, slots=True)
class DemoRun:
    """A finished demo iteration: the pipeline run and its report."""

    run: LocalRun
    report: Path
    params: dict[str, ParamValue]


def run_demo(
    settings: DemoSettings, state_dir: Path, on_step: Callable[[str], None] | None = None
) -> DemoRun:
    """Prepare the embedded services, run one loop iteration with kfp.local and write its report.

    Raises:
        PipelineError: When a step fails (the report is written first, naming it).
    """
    from cvops.annotation.server import start_server
    from cvops.errors import PipelineError
    from cvops.features.store import apply_feature_repo, stage_feature_repo
    from cvops.orchestration.kfp_runner import run_local
    from cvops.orchestration.run_report import write_run_report
    from cvops.registry.mlflow_registry import ModelRegistry

    step = on_step or (lambda _message: None)
    step("writing the demo's seed, pool and held-out data")
    source = write_demo_source(
        state_dir / "demo" / "source", settings.labeled_count, settings.pool_count, settings.heldout_count
    )
    step("starting Label Studio on 127.0.0.1 (the first start migrates its database, ~20 s)")
    server = start_server(settings.labelstudio_venv, state_dir / "labelstudio")
    step("applying the Feast feature repository (sqlite online store)")
    feature_repo = stage_feature_repo(settings.feature_declarations, state_dir / "feature_repo")
    apply_feature_repo(feature_repo)
    tracking_uri = ModelRegistry(state_dir=state_dir).tracking_uri
    params: dict[str, ParamValue] = {
        "seed_dataset_uri": str(source.labeled),
        "pool_dir": str(source.pool_images),
        "heldout_uri": str(source.heldout_coco),
        "replay_source": str(source.heldout_coco.parent / "images" / "val"),
        "model_name": DEMO_MODEL_NAME,
        "tracking_uri": tracking_uri,
        "labelstudio_project": DEMO_PROJECT,
        "feature_repo": str(feature_repo),
        "budget": settings.budget,
        "strategy": "combined",
        "simulated_labels_uri": str(source.pool_truth),
        "min_labeled": settings.budget,
        "label_timeout_s": 120.0,
        "epochs": settings.epochs,
        "imgsz": 160,
        "batch": 16,
        "nproc": settings.nproc,
        "calibration_dir": str(source.labeled / "images" / "train"),
        "canary_percent": settings.canary_percent,
        "replay_frames": settings.replay_frames,
    }
    step("running the continuous-training pipeline with kfp.local")
    run = run_local(settings.pipeline_file, params, state_dir / "pipeline-root")
    links = {
        "MLflow (registry, runs, lineage)": f"mlflow ui --backend-store-uri {tracking_uri}",
        "Model history": f"cvops registry history {DEMO_MODEL_NAME}",
        "Label Studio": f"{server.url}  (login {server.email}; password in {state_dir / 'labelstudio'})",
        "Feast repository": str(feature_repo),
        "Served champion": f"cvops rollout status {DEMO_MODEL_NAME}",
        "Stop what the demo left running": f"cvops rollout stop {DEMO_MODEL_NAME}; cvops labelstudio down",
    }
    report = write_run_report(run, settings.out_dir, links)
    if not run.is_succeeded:
        raise PipelineError(f"continuous-training failed: {run.error}; report: {report}")
    return DemoRun(run, report, params)
