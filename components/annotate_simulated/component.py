"""Demo and test only: complete open Label Studio tasks from known ground truth (a simulated annotator)."""

from kfp import dsl

from components import CVOPS_IMAGE


@dsl.component(base_image=CVOPS_IMAGE, install_kfp_package=False)
def annotate_simulated(
    labelstudio_url: str, labelstudio_document_root: str, project: str, ground_truth_uri: str
) -> int:
    """Annotate open tasks from ``ground_truth_uri``; an empty URI does nothing (people label)."""
    import os

    from cvops.loop.labeling import annotate_from_truth, connect

    connection = connect(
        labelstudio_url, os.environ.get("CVOPS_LABELSTUDIO_TOKEN", ""), labelstudio_document_root
    )
    result = annotate_from_truth(connection, project, ground_truth_uri)
    return 0 if result is None else result.annotated_count
