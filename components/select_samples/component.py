"""Pick the pool frames most worth labeling (active learning) under the labeling budget."""

from kfp import dsl

from components import CVOPS_IMAGE


@dsl.component(base_image=CVOPS_IMAGE, install_kfp_package=False)
def select_samples(
    pool_dir: str,
    pool_features: dsl.Input[dsl.Dataset],
    labeled: dsl.Input[dsl.Dataset],
    model_name: str,
    tracking_uri: str,
    feature_repo: str,
    budget: int,
    strategy: str,
    seed: int,
    selection: dsl.Output[dsl.Dataset],
) -> int:
    """Write ``selection.jsonl`` (frames, scores, reasons, pre-annotations) and ``summary.json``."""
    from pathlib import Path

    from cvops.loop.selection import select_samples as pick

    repo = Path(feature_repo) if feature_repo else None
    result = pick(
        Path(pool_dir),
        Path(labeled.path),
        model_name,
        tracking_uri or None,
        budget,
        strategy,
        Path(selection.path),
        repo,
        seed,
    )
    selection.metadata.update({"selected": result.summary.selected, "pool_features": pool_features.uri})
    return result.summary.selected
