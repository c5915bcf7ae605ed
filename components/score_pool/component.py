"""Describe every pool frame (image quality and the champion's detections) into the feature store."""

from kfp import dsl

from components import CVOPS_IMAGE


@dsl.component(base_image=CVOPS_IMAGE, install_kfp_package=False)
def score_pool(
    pool_dir: str, model_name: str, tracking_uri: str, feature_repo: str, features: dsl.Output[dsl.Dataset]
) -> int:
    """Write the pool's frame features to ``features`` (parquet) and Feast; return the frame count."""
    from pathlib import Path

    from cvops.loop.selection import score_pool as describe_pool

    repo = Path(feature_repo) if feature_repo else None
    return describe_pool(Path(pool_dir), model_name, tracking_uri or None, Path(features.path), repo)
