"""Label Studio projects for box annotation: labeling config from class names, create or reuse.

A project is found by its title. Its labeling config is an image with one ``RectangleLabels``
control whose labels are the model's class names, in class-id order; reusing a project whose
labels differ is refused (the class ids of a synced dataset would silently change).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

from cvops.annotation.client import LabelStudioClient
from cvops.errors import AnnotationServerError, InvalidInputError

IMAGE_KEY = "image"
"""The key of ``task.data`` holding the image URL (``$image`` in the config)."""

FROM_NAME = "label"
"""Name of the RectangleLabels control (a region's ``from_name``)."""

TO_NAME = "image"
"""Name of the Image object (a region's ``to_name``)."""


@dataclass(frozen=True, slots=True)
class ProjectRef:
    """A Label Studio project and its classes.

    Attributes:
        project_id: The project id.
        title: The project title.
        class_names: Its RectangleLabels labels, in class-id order.
        is_new: Whether this call created it.
    """

    project_id: int
    title: str
    class_names: tuple[str, ...]
    is_new: bool


def labeling_config(class_names: Sequence[str]) -> str:
    """Return the XML labeling config: an image and one RectangleLabels control of ``class_names``.

    Raises:
        InvalidInputError: For no class names, an empty or duplicated name.
    """
    names = check_class_names(class_names)
    labels = "\n".join(f"    <Label value={quoteattr(name)}/>" for name in names)
    return (
        "<View>\n"
        f'  <Image name="{TO_NAME}" value="${IMAGE_KEY}" zoom="true"/>\n'
        f'  <RectangleLabels name="{FROM_NAME}" toName="{TO_NAME}">\n'
        f"{labels}\n"
        "  </RectangleLabels>\n"
        "</View>"  # no trailing newline: Label Studio strips it from the stored config
    )


def config_class_names(config: str) -> tuple[str, ...]:
    """Return the labels of a config's first RectangleLabels control, in order (empty if none)."""
    try:
        root = ET.fromstring(config)
    except ET.ParseError:
        return ()
    control = root.find(".//RectangleLabels")
    if control is None:
        return ()
    return tuple(str(label.get("value", "")) for label in control.findall("Label"))


def check_class_names(class_names: Sequence[str]) -> tuple[str, ...]:
    """Return the class names as a tuple, or raise naming what is wrong with them."""
    names = tuple(class_names)
    if not names or any(not isinstance(n, str) or not n.strip() or "\n" in n for n in names):
        raise InvalidInputError(f"class names: expected non-empty one-line names, got {list(names)[:10]}")
    if len(set(names)) != len(names):
        duplicates = sorted({n for n in names if names.count(n) > 1})
        raise InvalidInputError(f"class names: expected unique names, got duplicates {duplicates}")
    return names


def find_project(client: LabelStudioClient, title: str) -> ProjectRef | None:
    """Return the project of this title, or None.

    Raises:
        AnnotationServerError: When several projects have this title (which one is meant?).
    """
    projects = [p for p in client.get_pages("/api/projects/", "results") if p.get("title") == title]
    if len(projects) > 1:
        ids = [p.get("id") for p in projects]
        raise AnnotationServerError(
            f"label studio: {len(projects)} projects are titled {title!r} (ids {ids})"
        )
    if not projects:
        return None
    project = projects[0]
    return ProjectRef(int(project["id"]), title, config_class_names(project.get("label_config", "")), False)


def ensure_project(client: LabelStudioClient, title: str, class_names: Sequence[str]) -> ProjectRef:
    """Return the project of this title, created with a box-labeling config when missing.

    Raises:
        InvalidInputError: For bad class names.
        AnnotationServerError: When the existing project's labels differ from ``class_names``.
    """
    names = check_class_names(class_names)
    found = find_project(client, title)
    if found is not None:
        if found.class_names != names:
            raise AnnotationServerError(
                f"label studio project {title!r} (id {found.project_id}): expected labels "
                f"{list(names)[:20]}, got {list(found.class_names)[:20]}; use another project title"
            )
        return found
    created = client.post(
        "/api/projects/",
        {
            "title": title,
            "description": "Boxes pre-annotated by a cvops model: correct them, do not redraw.",
            "label_config": labeling_config(names),
            "show_collab_predictions": True,
        },
    )
    return ProjectRef(int(created["id"]), title, names, True)


def ensure_local_storage(client: LabelStudioClient, project_id: int, folder: Path) -> int:
    """Connect a local-files storage of ``folder`` to the project (once) and return its id.

    Label Studio serves ``/data/local-files/?d=...`` only for files under a connected storage's
    folder; tasks are imported directly, so the storage is never synced.
    """
    path = str(folder.resolve())
    storages = client.get("/api/storages/localfiles/", {"project": project_id})
    for storage in storages or []:
        if storage.get("path") == path:
            return int(storage["id"])
    created = client.post(
        "/api/storages/localfiles/",
        {"project": project_id, "path": path, "title": "cvops frames", "use_blob_urls": False},
    )
    return int(created["id"])
