"""The canary's InferenceService: built by the KServe SDK, valid against the CRD, applied to a fake API."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from cvops.errors import InvalidInputError, RolloutError
from cvops.rollout.local import CanaryDeployment, read_state, stop_process, write_state
from cvops.rollout.manifest import ServiceSpec, apply_inference_service, render_inference_service
from cvops.serving.routing import RouterConfig
from tests.conftest import REPO_ROOT
from tests.unit.test_manifests import _strict as strict_schema  # the same CRD strictness

CRDS_DIR = Path(os.environ.get("CVOPS_CRDS", str(REPO_ROOT.parent / "shared" / "crds")))
CRD_FILE = CRDS_DIR / "kserve" / "serving.kserve.io_inferenceservices.yaml"


@functools.cache
def _inference_service_schema() -> dict[str, Any]:
    for document in yaml.load_all(CRD_FILE.read_text(), Loader=yaml.CSafeLoader):
        if isinstance(document, dict) and document.get("kind") == "CustomResourceDefinition":
            (version,) = [v for v in document["spec"]["versions"] if v["name"] == "v1beta1"]
            schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
            return schema
    raise AssertionError(f"no InferenceService CRD in {CRD_FILE}")


@functools.cache
def _spec_validator() -> jsonschema.Draft7Validator:
    """The CRD's ``spec`` schema, strict, compiled once (checking a schema this size takes seconds)."""
    return jsonschema.Draft7Validator(strict_schema(_inference_service_schema()["properties"]["spec"]))


def _validate(manifest: dict[str, Any]) -> None:
    if not CRD_FILE.is_file():
        pytest.skip(f"KServe CRD missing: {CRD_FILE} (set CVOPS_CRDS)")
    assert set(manifest) == {"apiVersion", "kind", "metadata", "spec"}
    error = jsonschema.exceptions.best_match(_spec_validator().iter_errors(manifest["spec"]))
    if error is not None:
        raise error


@pytest.mark.parametrize(
    ("canary", "shadow", "image"),
    [(10, 20, None), (0, 0, "cvops-serving:0.2.0"), (100, 0, None), (None, 0, None)],
    ids=["canary-10-shadow-20", "rolled-back-custom-image", "full-canary", "promoted-no-canary"],
)
def test_rendered_service_matches_the_kserve_crd(canary: int | None, shadow: int, image: str | None) -> None:
    manifest = render_inference_service(
        "s3://models/det/7/package",
        canary,
        shadow,
        ServiceSpec(name="cam-detector", namespace="vision", image=image),
    )
    _validate(manifest)
    assert (manifest["apiVersion"], manifest["kind"]) == ("serving.kserve.io/v1beta1", "InferenceService")
    assert manifest["metadata"] == {
        "name": "cam-detector",
        "namespace": "vision",
        "annotations": {
            "cvops.io/shadow-traffic-percent": str(shadow),
            "cvops.io/stream-affinity": "single-replica",
        },
    }
    predictor = manifest["spec"]["predictor"]
    assert predictor.get("canaryTrafficPercent") == canary
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (1, 1)
    model = predictor["model"]
    assert model["storageUri"] == "s3://models/det/7/package"
    assert (model["runtime"], model["modelFormat"]["name"]) == ("cvops-detector", "cvops-package")
    assert model.get("image") == image


def test_local_router_reads_the_same_split() -> None:
    manifest = render_inference_service("pvc://models/det", 30, 15)
    assert RouterConfig.from_inference_service(manifest) == RouterConfig(
        canaryTrafficPercent=30, shadowTrafficPercent=15
    )


def test_crd_validation_catches_a_wrong_field() -> None:
    manifest = render_inference_service("s3://m", 10)
    manifest["spec"]["predictor"]["canaryPercent"] = 10  # not a KServe field
    with pytest.raises(jsonschema.ValidationError):
        _validate(manifest)


@pytest.mark.parametrize(
    ("args", "match"),
    [(("s3://m", 101), "canary_percent"), (("s3://m", 10, -1), "shadow_percent"), (("", 10), "storage_uri")],
    ids=["canary-over-100", "negative-shadow", "no-storage-uri"],
)
def test_render_rejects_bad_input(args: tuple[Any, ...], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        render_inference_service(*args)


class _FakeCustomObjectsApi:
    """Stands in for kubernetes.client.CustomObjectsApi: no cluster exists on this machine."""

    def __init__(self, status_on_get: int | None = None) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls: list[str] = []
        self.status_on_get = status_on_get

    def get_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, name: str
    ) -> Any:
        from kubernetes.client.exceptions import ApiException

        self.calls.append(f"get {group}/{version} {plural} {namespace}/{name}")
        if self.status_on_get is not None:
            raise ApiException(status=self.status_on_get, reason="Forbidden")
        if (namespace, name) not in self.objects:
            raise ApiException(status=404, reason="Not Found")
        return self.objects[(namespace, name)]

    def create_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, body: dict[str, Any]
    ) -> Any:
        self.calls.append(f"create {namespace}/{body['metadata']['name']}")
        self.objects[(namespace, body["metadata"]["name"])] = body
        return body

    def patch_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, name: str, body: dict[str, Any]
    ) -> Any:
        self.calls.append(f"patch {namespace}/{name}")
        self.objects[(namespace, name)] = body
        return body


def test_apply_creates_then_patches_with_mocked_cluster() -> None:
    api = _FakeCustomObjectsApi()
    spec = ServiceSpec(namespace="vision")
    assert apply_inference_service(render_inference_service("s3://m/2", 10, 0, spec), api) == "created"
    assert apply_inference_service(render_inference_service("s3://m/2", 100, 0, spec), api) == "patched"
    assert api.calls == [
        "get serving.kserve.io/v1beta1 inferenceservices vision/detector",
        "create vision/detector",
        "get serving.kserve.io/v1beta1 inferenceservices vision/detector",
        "patch vision/detector",
    ]
    assert api.objects[("vision", "detector")]["spec"]["predictor"]["canaryTrafficPercent"] == 100


def test_apply_refused_by_mocked_cluster_is_one_line() -> None:
    with pytest.raises(RolloutError, match="answered 403 Forbidden"):
        apply_inference_service(
            render_inference_service("s3://m", 10), _FakeCustomObjectsApi(status_on_get=403)
        )


def test_apply_without_any_cluster_names_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing-kubeconfig"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(RolloutError, match="no Kubernetes cluster configured"):
        apply_inference_service(render_inference_service("s3://m", 10))


# --- local deployment state ------------------------------------------------------------------------


def _deployment(**changes: Any) -> CanaryDeployment:
    base: dict[str, Any] = {
        "model_name": "det", "target": "local", "mode": "canary", "canary_percent": 10, "shadow_percent": 0,
        "champion_version": 1, "challenger_version": 2, "tracking_uri": "sqlite:///x.db",
        "url": "http://127.0.0.1:9", "port": 9, "pid": None,
    }  # fmt: skip
    return CanaryDeployment.model_validate({**base, **changes})


def test_state_file_round_trip(tmp_path: Path) -> None:
    deployment = _deployment()
    path = write_state(tmp_path, deployment)
    assert path == tmp_path / "rollout" / "det.json"
    assert read_state(tmp_path, "det") == deployment
    assert read_state(tmp_path, "other") is None


def test_corrupt_state_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "rollout").mkdir()
    (tmp_path / "rollout" / "det.json").write_text('{"model_name": "det"}')
    with pytest.raises(RolloutError, match="not a deployment state file"):
        read_state(tmp_path, "det")


def test_stop_leaves_a_pid_that_is_not_our_server_alone() -> None:
    assert stop_process(os.getpid()) is False  # pytest is not `python -m serving`
