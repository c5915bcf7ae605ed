"""The selection and labeling components, called directly (``python_func``) against a real Label Studio."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kfp import dsl

from cvops.data.formats import read_dataset
from cvops.data.synthetic import generate_scenes
from cvops.registry.mlflow_registry import embedded_tracking_uri
from tests.integration.labelstudio_server import (  # noqa: F401  (fixtures)
    RunningServer,
    ground_truth_fixture,
    labelstudio_fixture,
)

pytestmark = pytest.mark.integration

BUDGET = 6


def test_score_select_push_annotate_sync_chain(
    labelstudio: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from components.annotate_simulated.component import annotate_simulated
    from components.deploy_canary.component import deploy_canary
    from components.push_to_labelstudio.component import push_to_labelstudio
    from components.score_pool.component import score_pool
    from components.select_samples.component import select_samples
    from components.sync_labels.component import sync_labels

    seed = generate_scenes(tmp_path / "seed", 8, 4, 96, seed=11)
    pool = generate_scenes(tmp_path / "pool", 20, 1, 96, seed=12)
    pool_images = pool.root / "images" / "train"
    uri = embedded_tracking_uri(tmp_path / "state")
    info = labelstudio.info
    monkeypatch.setenv("CVOPS_LABELSTUDIO_TOKEN", info.token)
    server = {"labelstudio_url": info.url, "labelstudio_document_root": info.document_root}

    features = dsl.Dataset(uri=str(tmp_path / "features"))
    count = score_pool.python_func(
        pool_dir=str(pool_images), model_name="m", tracking_uri=uri, feature_repo="", features=features
    )
    assert count == 20
    assert list((tmp_path / "features").rglob("*.parquet"))

    labeled = dsl.Dataset(uri=str(seed.root))
    selection = dsl.Dataset(uri=str(tmp_path / "selection"))
    selected = select_samples.python_func(
        pool_dir=str(pool_images),
        pool_features=features,
        labeled=labeled,
        model_name="m",
        tracking_uri=uri,
        feature_repo="",
        budget=BUDGET,
        strategy="combined",
        seed=0,
        selection=selection,
    )
    assert selected == BUDGET
    lines = (tmp_path / "selection" / "selection.jsonl").read_text().splitlines()
    assert [json.loads(line)["strategy"] for line in lines] == ["coreset"] * BUDGET  # no champion yet

    project_id = push_to_labelstudio.python_func(
        selection=selection, labeled=labeled, project="chain", **server
    )
    assert project_id > 0
    annotated = annotate_simulated.python_func(project="chain", ground_truth_uri=str(pool.root), **server)
    assert annotated == BUDGET
    grown = dsl.Dataset(uri=str(tmp_path / "grown"))
    version = sync_labels.python_func(
        base=labeled, project="chain", min_completed=BUDGET, timeout_s=60.0, dataset=grown, **server
    )
    assert grown.metadata["version_id"] == version
    assert len(read_dataset(tmp_path / "grown")) == 12 + BUDGET

    where = deploy_canary.python_func(model_name="m", tracking_uri=uri, canary_percent=20, target="local")
    assert where.startswith("none: no champion yet")


def test_push_without_a_token_for_a_remote_server_fails_in_one_line(tmp_path: Path) -> None:
    from cvops.errors import InvalidInputError
    from cvops.loop.labeling import connect

    with pytest.raises(InvalidInputError, match="needs its token"):
        connect("http://127.0.0.1:9", "", str(tmp_path))
