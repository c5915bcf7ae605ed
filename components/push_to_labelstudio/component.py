"""Import the selected frames into Label Studio with the model's detections as pre-annotations."""

from kfp import dsl

from components import CVOPS_IMAGE


@dsl.component(base_image=CVOPS_IMAGE, install_kfp_package=False)
def push_to_labelstudio(
    selection: dsl.Input[dsl.Dataset],
    labeled: dsl.Input[dsl.Dataset],
    labelstudio_url: str,
    labelstudio_document_root: str,
    project: str,
) -> int:
    """Create or reuse the project and import the new frames; return the project id."""
    import os
    from pathlib import Path

    from cvops.loop.labeling import connect, push_selection

    connection = connect(
        labelstudio_url, os.environ.get("CVOPS_LABELSTUDIO_TOKEN", ""), labelstudio_document_root
    )
    return push_selection(connection, Path(selection.path), Path(labeled.path), project).project_id
