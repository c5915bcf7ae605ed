"""Wait for enough completed labels, sync them into a dataset version and grow the training set."""

from kfp import dsl

from components import CVOPS_IMAGE


@dsl.component(base_image=CVOPS_IMAGE, install_kfp_package=False)
def sync_labels(
    base: dsl.Input[dsl.Dataset],
    labelstudio_url: str,
    labelstudio_document_root: str,
    project: str,
    min_completed: int,
    timeout_s: float,
    dataset: dsl.Output[dsl.Dataset],
) -> str:
    """Write ``base`` plus every completed annotation to ``dataset``; return its version id."""
    import os
    from pathlib import Path

    from cvops.loop.labeling import connect, sync_and_grow

    connection = connect(
        labelstudio_url, os.environ.get("CVOPS_LABELSTUDIO_TOKEN", ""), labelstudio_document_root
    )
    grown = sync_and_grow(connection, project, Path(base.path), Path(dataset.path), min_completed, timeout_s)
    dataset.metadata.update({"version_id": grown.version_id, "images": grown.image_count})
    return grown.version_id
