"""Label Studio config, box conversion and frame placement: pure functions, no server."""

from __future__ import annotations

from pathlib import Path

import pytest

from cvops.annotation.project import check_class_names, config_class_names, labeling_config
from cvops.annotation.push import COPY_FOLDER, _served_path, box_percent
from cvops.annotation.simulate import SIMULATED_MARK, SimulatedAnnotator
from cvops.annotation.sync import SyncState, read_sync_state
from cvops.data.formats import DetectionDataset, LabeledImage
from cvops.errors import DatasetError, InvalidInputError


@pytest.mark.parametrize(
    "names",
    [["person"], ["cat", "dog", "traffic light"], ['a "quoted" <name> & more', "b'c"]],
    ids=["one", "spaces", "xml-special"],
)
def test_labeling_config_round_trips_class_names_in_order(names: list[str]) -> None:
    config = labeling_config(names)
    assert config_class_names(config) == tuple(names)
    assert '<Image name="image" value="$image"' in config


@pytest.mark.parametrize(
    ("names", "message"),
    [
        ([], "non-empty"),
        (["a", ""], "non-empty"),
        (["a\nb"], "one-line"),
        (["a", "b", "a"], r"duplicates \['a'\]"),
    ],
    ids=["none", "empty", "newline", "duplicate"],
)
def test_bad_class_names_are_refused(names: list[str], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        check_class_names(names)


def test_config_without_rectangle_labels_has_no_classes() -> None:
    assert config_class_names("<View><Image name='i' value='$image'/></View>") == ()
    assert config_class_names("not xml") == ()


@pytest.mark.parametrize(
    ("xyxy", "size", "expected"),
    [
        ((0, 0, 640, 480), (640, 480), (0.0, 0.0, 100.0, 100.0)),
        ((64, 48, 128, 144), (640, 480), (10.0, 10.0, 10.0, 20.0)),
        ((1, 2, 1, 2), (10, 10), (10.0, 20.0, 0.0, 0.0)),
    ],
    ids=["whole", "box", "point"],
)
def test_box_percent(
    xyxy: tuple[float, float, float, float], size: tuple[int, int], expected: tuple[float, ...]
) -> None:
    value = box_percent(xyxy, *size)
    assert (value["x"], value["y"], value["width"], value["height"]) == pytest.approx(expected)


def test_frames_outside_or_at_the_document_root_are_copied_below_it(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "cam1").mkdir(parents=True)
    inside = root / "cam1" / "a.jpg"
    inside.write_bytes(b"inside")
    outside = tmp_path / "b.jpg"
    outside.write_bytes(b"outside")
    at_root = root / "c.jpg"
    at_root.write_bytes(b"at root")
    assert _served_path(inside, "0" * 64, root) == "cam1/a.jpg"
    copied = _served_path(outside, "ab" * 32, root)
    assert copied == f"{COPY_FOLDER}/{'ab' * 8}/b.jpg"
    assert (root / copied).read_bytes() == b"outside"
    assert _served_path(at_root, "cd" * 32, root).startswith(f"{COPY_FOLDER}/")


def test_simulated_annotator_writes_marked_regions_from_ground_truth(tmp_path: Path) -> None:
    image = tmp_path / "x.jpg"
    image.write_bytes(b"pixels")
    item = LabeledImage.from_arrays(image, 200, 100, [[20, 10, 60, 50], [0, 0, 200, 100]], [1, 0], "train")
    annotator = SimulatedAnnotator(DetectionDataset(("cat", "dog"), (item,)))
    first, second = annotator.regions(item)
    assert first["value"]["rectanglelabels"] == ["dog"]
    assert (first["value"]["x"], first["value"]["y"], first["value"]["width"]) == pytest.approx((10, 10, 20))
    assert second["value"]["width"] == pytest.approx(100)
    assert first["meta"]["text"] == [SIMULATED_MARK]
    assert (first["original_width"], first["original_height"]) == (200, 100)


def test_sync_state_is_none_before_the_first_sync_and_refused_when_damaged(tmp_path: Path) -> None:
    assert read_sync_state(tmp_path) is None
    state = SyncState(project_id=1, version_id="a" * 12, synced_at="now", completed_task_count=3, box_count=5)
    (tmp_path / "sync_state.json").write_text(state.model_dump_json())
    assert read_sync_state(tmp_path) == state
    (tmp_path / "sync_state.json").write_text('{"project_id": 0}')
    with pytest.raises(DatasetError, match="not a valid sync state"):
        read_sync_state(tmp_path)
