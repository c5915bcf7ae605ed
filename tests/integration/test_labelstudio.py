"""Push, simulate and sync against a real Label Studio 1.23 server on 127.0.0.1 (one per session)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

import cvops.annotation.sync as sync_module
from cvops.annotation.project import ensure_project, labeling_config
from cvops.annotation.push import push_frames
from cvops.annotation.server import start_server, stop_server
from cvops.annotation.simulate import SIMULATED_MARK, simulate_annotations
from cvops.annotation.sync import STATE_FILE, read_sync_state, sync_annotations
from cvops.cli.app import main
from cvops.contracts.detections import ImageDetections
from cvops.data.formats import DetectionDataset, LabeledImage, read_coco, read_yolo, write_yolo
from cvops.data.versions import dataset_manifest, read_manifest
from cvops.detection.types import Detections
from cvops.errors import AnnotationServerError, AnnotationTimeoutError
from tests.integration.labelstudio_server import (  # noqa: F401  (fixtures)
    LABELSTUDIO_VENV,
    RunningServer,
    ground_truth_fixture,
    labelstudio_fixture,
    model_frames,
)

pytestmark = pytest.mark.integration


def _push(server: RunningServer, project: str, dataset: DetectionDataset) -> None:
    push_frames(server.connection, project, dataset.class_names, model_frames(dataset), "synthetic-v1")


def test_project_is_created_once_then_reused_and_other_labels_are_refused(labelstudio: RunningServer) -> None:
    with labelstudio.connection.client() as client:
        first = ensure_project(client, "reuse", ["cat", "dog"])
        again = ensure_project(client, "reuse", ["cat", "dog"])
        assert (first.is_new, again.is_new, again.project_id) == (True, False, first.project_id)
        stored = client.get(f"/api/projects/{first.project_id}/")["label_config"]
        assert stored == labeling_config(["cat", "dog"])
        with pytest.raises(AnnotationServerError, match=r"expected labels \['dog', 'cat'\]"):
            ensure_project(client, "reuse", ["dog", "cat"])


def test_push_imports_frames_with_predictions_and_serves_the_images(
    labelstudio: RunningServer, ground_truth: DetectionDataset
) -> None:
    started = time.monotonic()
    result = push_frames(
        labelstudio.connection, "push", ground_truth.class_names, model_frames(ground_truth), "synthetic-v1"
    )
    print(f"push: {result.imported_count} tasks in {time.monotonic() - started:.2f} s")
    assert (result.imported_count, result.skipped_count) == (len(ground_truth), 0)
    assert result.prediction_count == ground_truth.box_count
    again = push_frames(
        labelstudio.connection, "push", ground_truth.class_names, model_frames(ground_truth), "synthetic-v1"
    )
    assert (again.imported_count, again.skipped_count, again.is_new_project) == (0, len(ground_truth), False)
    with labelstudio.connection.client() as client:
        tasks = client.get("/api/tasks/", {"project": result.project_id, "page_size": 100})["tasks"]
        assert len(tasks) == len(ground_truth)
        predictions = client.get("/api/predictions/", {"task": tasks[0]["id"]})
        image_url = tasks[0]["data"]["image"]
        image = client._http.get(image_url)  # served by the local-files storage, with the token
    assert image_url.startswith("/data/local-files/?d=cvops-frames/")
    (prediction,) = predictions
    assert prediction["model_version"] == "synthetic-v1"
    first = next(i for i in ground_truth.items if i.image_path.name == Path(image_url).name)
    assert len(prediction["result"]) == len(first)
    region = prediction["result"][0]
    assert region["value"]["rectanglelabels"][0] in ground_truth.class_names
    assert 0 < region["value"]["width"] <= 100
    assert image.status_code == 200
    assert image.content == first.image_path.read_bytes()


def test_simulated_annotator_then_sync_equals_ground_truth_and_resync_adds_nothing(
    labelstudio: RunningServer, ground_truth: DetectionDataset, tmp_path: Path
) -> None:
    _push(labelstudio, "loop", ground_truth)
    simulated = simulate_annotations(labelstudio.connection, "loop", ground_truth)
    assert (simulated.annotated_count, simulated.box_count) == (len(ground_truth), ground_truth.box_count)
    assert simulate_annotations(labelstudio.connection, "loop", ground_truth).annotated_count == 0

    result = sync_annotations(labelstudio.connection, "loop", tmp_path, min_completed=len(ground_truth))
    assert result.is_new
    assert result.version_id == dataset_manifest(ground_truth).version_id
    synced = read_yolo(result.version_dir / "data.yaml")
    assert dataset_manifest(synced).version_id == result.version_id
    assert read_manifest(result.version_dir / "manifest.json").version_id == result.version_id
    export = json.loads((result.version_dir / "export.json").read_text())
    assert export[0]["annotations"][0]["result"][0]["meta"]["text"] == [SIMULATED_MARK]

    again = sync_annotations(labelstudio.connection, "loop", tmp_path)
    assert (again.is_new, again.version_id, again.previous_version_id) == (
        False,
        result.version_id,
        result.version_id,
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([".sync.lock", STATE_FILE, result.version_id])


def test_sync_waits_for_min_completed_then_times_out_clearly(
    labelstudio: RunningServer, ground_truth: DetectionDataset, tmp_path: Path
) -> None:
    _push(labelstudio, "wait", ground_truth)
    simulate_annotations(labelstudio.connection, "wait", ground_truth, limit=2)
    with pytest.raises(AnnotationTimeoutError, match=r"expected >= 5 annotated tasks within 1 s, got 2"):
        sync_annotations(
            labelstudio.connection, "wait", tmp_path, min_completed=5, timeout_s=1, poll_interval_s=0.3
        )
    result = sync_annotations(
        labelstudio.connection, "wait", tmp_path / "coco", dataset_format="coco", min_completed=2
    )
    coco = read_coco(result.version_dir / "annotations_coco_train.json")
    assert len(coco) == result.image_count == 2


def test_edited_and_deleted_annotations_and_tasks_change_the_next_version(
    labelstudio: RunningServer, ground_truth: DetectionDataset, tmp_path: Path
) -> None:
    _push(labelstudio, "edit", ground_truth)
    simulate_annotations(labelstudio.connection, "edit", ground_truth)
    first = sync_annotations(labelstudio.connection, "edit", tmp_path)
    export = json.loads((first.version_dir / "export.json").read_text())
    edited, annotation_deleted, task_deleted, reannotated = export[0], export[1], export[2], export[3]
    with labelstudio.connection.client() as client:
        annotation = edited["annotations"][0]
        result = annotation["result"][:1]  # the annotator removes all but the first box
        client.patch(f"/api/annotations/{annotation['id']}/", {"result": result})
        client.delete(f"/api/annotations/{annotation_deleted['annotations'][0]['id']}/")
        client.delete(f"/api/tasks/{task_deleted['id']}/")
        # A second, newer annotation of another task (a reviewer's): the latest one wins.
        newer = reannotated["annotations"][0]["result"][-1:]
        client.post(f"/api/tasks/{reannotated['id']}/annotations/", {"result": newer})

    second = sync_annotations(labelstudio.connection, "edit", tmp_path)
    assert second.is_new
    assert second.previous_version_id == first.version_id
    assert second.image_count == len(ground_truth) - 2
    changed = (edited, annotation_deleted, task_deleted, reannotated)
    names = {Path(t["data"]["image"]).name: t for t in changed}
    expected_items = []
    for item in ground_truth.items:
        task = names.get(item.image_path.name)
        if task is annotation_deleted or task is task_deleted:
            continue
        keep = slice(0, 1) if task is edited else slice(-1, None) if task is reannotated else slice(None)
        boxes, ids = item.xyxy[keep], item.class_ids[keep]
        expected_items.append(LabeledImage(item.image_path, item.width, item.height, boxes, ids, "train"))
    expected = DetectionDataset(ground_truth.class_names, tuple(expected_items))
    assert second.version_id == dataset_manifest(expected).version_id
    assert read_sync_state(tmp_path).version_id == second.version_id  # type: ignore[union-attr]
    assert {p.name for p in tmp_path.iterdir() if not p.name.startswith(".")} == {
        first.version_id,
        second.version_id,
        STATE_FILE,
    }


def test_sync_killed_while_writing_leaves_nothing_and_the_next_run_recovers(
    labelstudio: RunningServer,
    ground_truth: DetectionDataset,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _push(labelstudio, "crash", ground_truth)
    simulate_annotations(labelstudio.connection, "crash", ground_truth)
    calls: list[Path] = []

    def write_yolo_then_die(dataset: DetectionDataset, out_dir: Path) -> Path:
        calls.append(write_yolo(dataset, out_dir))  # half the version is on disk ...
        raise KeyboardInterrupt("killed while writing")  # ... when the process is stopped

    monkeypatch.setattr(sync_module, "write_yolo", write_yolo_then_die)
    with pytest.raises(KeyboardInterrupt):
        sync_annotations(labelstudio.connection, "crash", tmp_path)
    assert calls
    assert sorted(p.name for p in tmp_path.iterdir()) == [".sync.lock"]
    monkeypatch.undo()
    leftover = tmp_path / ".partial-sigkilled"  # what a SIGKILL (no cleanup at all) leaves
    (leftover / "images").mkdir(parents=True)

    result = sync_annotations(labelstudio.connection, "crash", tmp_path)
    assert result.is_new
    assert result.previous_version_id is None
    assert result.version_id == dataset_manifest(ground_truth).version_id
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([".sync.lock", STATE_FILE, result.version_id])


def test_cli_status_simulate_and_sync(
    labelstudio: RunningServer,
    ground_truth: DetectionDataset,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = ["--base-dir", str(labelstudio.base_dir)]
    detections = tmp_path / "detections.jsonl"  # what `cvops detect` writes
    detections.write_text(
        "".join(
            ImageDetections.from_detections(str(image), 160, 160, "synthetic-v1", found).model_dump_json()
            + "\n"
            for image, found in model_frames(ground_truth)
            if isinstance(found, Detections)
        )
    )
    names = ",".join(ground_truth.class_names)
    push = [
        "labelstudio",
        "push",
        str(detections),
        "--project",
        "cli",
        "--names",
        names,
        "--model-version",
        "v1",
    ]
    assert main([*push, *base]) == 0
    assert f"imported {len(ground_truth)} tasks ({ground_truth.box_count} boxes)" in capsys.readouterr().out
    gt_yaml = write_yolo(ground_truth, tmp_path / "gt")
    assert main(["labelstudio", "status", *base]) == 0
    assert capsys.readouterr().out.startswith(f"running {labelstudio.info.url}")
    assert main(["labelstudio", "simulate", "--ground-truth", str(gt_yaml), "--project", "cli", *base]) == 0
    assert f"{len(ground_truth)} tasks annotated" in capsys.readouterr().out
    assert main(["labelstudio", "sync", "--project", "cli", "--out", str(tmp_path / "v"), *base]) == 0
    version_dir = Path(capsys.readouterr().out.strip())
    assert version_dir.name == dataset_manifest(ground_truth).version_id
    assert main(["labelstudio", "sync", "--project", "missing", "--out", str(tmp_path / "v"), *base]) == 2
    assert "no project titled 'missing'" in capsys.readouterr().err


def test_start_twice_reuses_the_server_and_a_restart_keeps_data_and_token(
    labelstudio: RunningServer, ground_truth: DetectionDataset
) -> None:
    before = labelstudio.info
    assert start_server(LABELSTUDIO_VENV, labelstudio.base_dir).pid == before.pid
    assert (labelstudio.base_dir / "server.json").stat().st_mode & 0o777 == 0o600
    stopped = stop_server(labelstudio.base_dir)
    assert stopped is not None
    assert stopped.pid is None
    assert main(["labelstudio", "status", "--base-dir", str(labelstudio.base_dir)]) == 1
    started = time.monotonic()
    after = start_server(LABELSTUDIO_VENV, labelstudio.base_dir, port=before.port)
    restart_s = time.monotonic() - started
    print(f"label studio first start {labelstudio.first_start_s:.1f} s, restart {restart_s:.1f} s")
    assert after.pid != before.pid
    assert (after.url, after.token) == (before.url, before.token)
    with labelstudio.connection.client() as client:
        titles = {p["title"] for p in client.get_pages("/api/projects/", "results")}
    assert "reuse" in titles
