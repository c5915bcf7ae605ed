"""Pull the dataset the next model builds on (the champion's, else the seed) and version it."""

from kfp import dsl

from components import CVOPS_IMAGE


@dsl.component(base_image=CVOPS_IMAGE, install_kfp_package=False)
def pull_dataset(seed_uri: str, model_name: str, tracking_uri: str, dataset: dsl.Output[dsl.Dataset]) -> str:
    """Pull into ``dataset`` the champion's training data, or ``seed_uri`` before any champion.

    Returns the dataset's content-addressed version id.
    """
    from pathlib import Path

    from cvops.loop.datasets import pull_training_base

    pulled = pull_training_base(seed_uri, Path(dataset.path), model_name, tracking_uri or None)
    dataset.metadata.update({"version_id": pulled.version_id, "images": pulled.image_count})
    return pulled.version_id
