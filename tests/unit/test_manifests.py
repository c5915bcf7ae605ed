"""Render every Kustomize overlay and check it as a cluster would, without a cluster.

Built-in kinds are validated by ``kubernetes_validate --strict`` (Kubernetes 1.32, the version of
kubectl here), custom resources by the served version of their CRD in ``../shared/crds`` with
unknown fields forbidden, and a kind that no schema covers fails. No API server or controller
runs here: the labels KServe and the training operator put on their pods are stated in this file.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import typer.main
import yaml

from cvops.cli import train as _train  # noqa: F401  (registers `cvops train` on the app)
from cvops.cli.app import app
from cvops.serving.routing import RouterConfig
from serving.__main__ import parse_args as parse_server_args
from tests.conftest import REPO_ROOT

CRDS_DIR = Path(os.environ.get("CVOPS_CRDS", str(REPO_ROOT.parent / "shared" / "crds")))
MANIFESTS = REPO_ROOT / "manifests"
OVERLAYS = sorted(p.name for p in (MANIFESTS / "overlays").iterdir() if p.is_dir())
KUBERNETES_VERSION = "1.32.0"
NAMESPACES = {"dev": "cvops-dev", "prod": "cvops", "ab": "cvops"}
GPU = "nvidia.com/gpu"


def _schemas() -> dict[tuple[str, str], dict[str, Any]]:
    if not CRDS_DIR.is_dir():
        pytest.skip(f"CRD schemas missing: {CRDS_DIR} (set CVOPS_CRDS)")
    return _load_schemas(CRDS_DIR)


@functools.cache
def _load_schemas(crds_dir: Path) -> dict[tuple[str, str], dict[str, Any]]:
    schemas = {}
    for path in crds_dir.rglob("*.yaml"):
        for document in yaml.load_all(path.read_text(), Loader=yaml.CSafeLoader):
            if not isinstance(document, dict) or document.get("kind") != "CustomResourceDefinition":
                continue
            if "versions" not in document.get("spec", {}):
                continue  # a patch, not a definition
            spec = document["spec"]
            for version in spec["versions"]:
                if version.get("served"):
                    api_version = f"{spec['group']}/{version['name']}"
                    schemas[(api_version, spec["names"]["kind"])] = version["schema"]["openAPIV3Schema"]
    return schemas


def _strict(schema: dict[str, Any]) -> dict[str, Any]:
    """Forbid unknown fields wherever the CRD does not preserve them, as the API server prunes."""
    schema = dict(schema)
    if schema.get("pattern", "").startswith("^(?i)"):  # Go's RE2 takes inline flags anywhere, Python's re not
        schema["pattern"] = "(?i)^" + schema["pattern"][len("^(?i)") :]
    if (
        schema.get("type") == "object"
        and "properties" in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        schema.setdefault("additionalProperties", False)
    for key in ("properties", "patternProperties"):
        if key in schema:
            schema[key] = {name: _strict(sub) for name, sub in schema[key].items()}
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            schema[key] = _strict(schema[key])
    return schema


def _validate(resource: dict[str, Any]) -> None:
    """Raise a ValidationError for a bad resource, LookupError for a kind no schema covers."""
    key = (resource["apiVersion"], resource["kind"])
    if key in _schemas():
        body = {k: v for k, v in resource.items() if k not in ("apiVersion", "kind", "metadata")}
        _crd_validator(*key).validate(body)
        return
    try:
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError as error:
        raise LookupError(f"no CRD in {CRDS_DIR} nor Kubernetes {KUBERNETES_VERSION} covers {key}") from error


@functools.cache
def _crd_validator(api_version: str, kind: str) -> jsonschema.protocols.Validator:
    """The strict CRD schema of a kind, compiled once (the schemas are large)."""
    schema = _strict(_schemas()[(api_version, kind)])
    schema["properties"] = {
        k: v for k, v in schema["properties"].items() if k not in ("apiVersion", "kind", "metadata")
    }
    # No check_schema: the upstream CRDs are trusted, and checking the InferenceService's takes ~10 s.
    return jsonschema.validators.validator_for(schema)(schema)


@functools.cache
def _rendered(overlay: str) -> str:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl missing: needed for `kubectl kustomize`")
    result = subprocess.run(
        ["kubectl", "kustomize", str(MANIFESTS / "overlays" / overlay)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"overlays/{overlay} does not render: {result.stderr}"
    return result.stdout


def _render(overlay: str) -> list[dict[str, Any]]:
    """The overlay's resources, freshly parsed (tests may change them)."""
    return [d for d in yaml.safe_load_all(_rendered(overlay)) if d]


def _of_kind(overlay: str, kind: str) -> list[dict[str, Any]]:
    return [r for r in _render(overlay) if r["kind"] == kind]


def _containers(resource: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every container spec of a workload, the InferenceService model included."""
    if resource["kind"] == "ServingRuntime":
        yield from resource["spec"]["containers"]
    elif resource["kind"] == "InferenceService":
        yield resource["spec"]["predictor"]["model"]
    elif resource["kind"] == "PyTorchJob":
        for replica in resource["spec"]["pytorchReplicaSpecs"].values():
            yield from replica["template"]["spec"]["containers"]


def _walk(node: object) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


# --- schemas ---------------------------------------------------------------------------------------


def test_every_environment_has_an_overlay() -> None:
    assert {"local", "canary", "dev", "prod", "ab"} <= set(OVERLAYS)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_resource_matches_its_schema(overlay: str) -> None:
    resources = _render(overlay)
    assert resources
    for resource in resources:
        _validate(resource)


def test_unknown_field_fails_validation() -> None:
    (service,) = _of_kind("local", "InferenceService")
    service["spec"]["predictor"]["canaryTraficPercent"] = 10  # misspelled
    with pytest.raises(jsonschema.ValidationError, match="canaryTraficPercent"):
        _validate(service)


def test_unknown_field_in_a_built_in_kind_fails_validation() -> None:
    policy = _of_kind("local", "NetworkPolicy")[0]
    policy["spec"]["ingres"] = []  # misspelled
    with pytest.raises(kubernetes_validate.ValidationError, match="ingres"):
        _validate(policy)


def test_a_kind_no_schema_covers_fails() -> None:
    widget = {"apiVersion": "cvops.io/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {}}
    with pytest.raises(LookupError, match="Widget"):
        _validate(widget)


@pytest.mark.parametrize("overlay", sorted(NAMESPACES))
def test_every_resource_lands_in_the_overlay_namespace(overlay: str) -> None:
    assert {r["metadata"].get("namespace") for r in _render(overlay)} == {NAMESPACES[overlay]}


# --- secrets ---------------------------------------------------------------------------------------

_SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_secret_is_inlined(overlay: str) -> None:
    resources = _render(overlay)
    assert not [r["metadata"]["name"] for r in resources if r["kind"] == "Secret"]
    for node in _walk(resources):
        for variable in node.get("env", []) if isinstance(node.get("env"), list) else []:
            if any(word in variable["name"].upper() for word in _SECRET_WORDS):
                assert "value" not in variable, f"{overlay}: {variable['name']} inlined"
                assert "secretKeyRef" in variable["valueFrom"], variable


def test_no_manifest_file_defines_a_secret() -> None:
    for path in MANIFESTS.rglob("*.y*ml"):
        documents = [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
        for document in documents:
            assert document.get("kind") != "Secret", path
            assert "secretGenerator" not in document, path


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_server_args_parse_and_read_api_keys_from_a_mounted_secret(overlay: str) -> None:
    (runtime,) = _of_kind(overlay, "ServingRuntime")
    (container,) = runtime["spec"]["containers"]
    args = parse_server_args(container["args"])  # the image's entrypoint is `python -m serving`
    assert args.allow_anonymous is False
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in runtime["spec"]["volumes"]}
    secret = volumes[mounts[str(Path(args.api_keys_file).parent)]]["secret"]
    assert secret["secretName"] == "cvops-api-keys"


# --- serving: replicas, resources, A/B ------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_tracking_predictors_stay_on_one_replica(overlay: str) -> None:
    for service in _of_kind(overlay, "InferenceService"):
        predictor = service["spec"]["predictor"]
        assert predictor["minReplicas"] == predictor["maxReplicas"] == 1, service["metadata"]["name"]
        assert service["metadata"]["annotations"]["cvops.io/stream-affinity"] == "single-replica"


def test_one_manifest_drives_cluster_and_local_router() -> None:
    (service,) = _of_kind("canary", "InferenceService")
    assert RouterConfig.from_inference_service(service) == RouterConfig(
        canaryTrafficPercent=10, shadowTrafficPercent=20
    )


@pytest.mark.parametrize("overlay", ["prod", "ab"])
def test_prod_sets_requests_limits_gpus_and_registry_images(overlay: str) -> None:
    workloads = [
        r for r in _render(overlay) if r["kind"] in ("ServingRuntime", "InferenceService", "PyTorchJob")
    ]
    for resource in workloads:
        for container in _containers(resource):
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][bound]), resource["metadata"]["name"]
            if "image" in container:
                image = container["image"]
                assert image.startswith("ghcr.io/"), image
                assert ":" in image.rsplit("/", 1)[-1], image
                assert not image.endswith(":latest"), image
    for service in _of_kind(overlay, "InferenceService"):
        assert int(service["spec"]["predictor"]["model"]["resources"]["limits"][GPU]) == 1


def test_dev_is_small_and_needs_no_gpu() -> None:
    assert GPU not in _rendered("dev")
    for resource in _render("dev"):
        for container in _containers(resource):
            if "resources" in container:
                cpu = str(container["resources"]["limits"]["cpu"])
                assert (int(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu)) <= 2


def test_ab_graph_splits_between_two_matching_arms() -> None:
    (graph,) = _of_kind("ab", "InferenceGraph")
    services = {s["metadata"]["name"]: s["spec"]["predictor"] for s in _of_kind("ab", "InferenceService")}
    (root,) = graph["spec"]["nodes"].values()
    assert root["routerType"] == "Splitter"
    assert (
        {step["serviceName"] for step in root["steps"]}
        == set(services)
        == {"detector", "detector-challenger"}
    )
    assert sum(step["weight"] for step in root["steps"]) == 100
    champion, challenger = services["detector"], services["detector-challenger"]
    assert champion["model"].pop("storageUri") != challenger["model"].pop("storageUri")
    assert champion == challenger
    assert graph["spec"]["minReplicas"] >= 2  # the router is stateless: more replicas are safe


# --- training ---------------------------------------------------------------------------------------

_TRAINING_OVERLAYS = ["dev", "prod"]


@pytest.mark.parametrize("overlay", _TRAINING_OVERLAYS)
def test_training_job_runs_cvops_train_on_two_ranks(overlay: str) -> None:
    (job,) = _of_kind(overlay, "PyTorchJob")
    (master,) = [spec for role, spec in job["spec"]["pytorchReplicaSpecs"].items() if role == "Master"]
    assert master["replicas"] == 1
    (container,) = master["template"]["spec"]["containers"]
    assert container["name"] == "pytorch"
    assert container["command"] == ["cvops", "train"]
    command = typer.main.get_command(app).commands["train"]  # type: ignore[attr-defined]
    params = command.make_context("train", list(container["args"])).params  # parses, never runs
    assert params["nproc"] == 2
    gpus = int(container["resources"]["limits"].get(GPU, 0))
    assert gpus in (0, params["nproc"])  # a GPU per rank, or none
    assert (overlay == "prod") == (gpus > 0)
    volumes = {v["name"] for v in master["template"]["spec"]["volumes"]}
    assert {m["name"] for m in container["volumeMounts"]} <= volumes


# --- network policies ------------------------------------------------------------------------------


def _matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        is_match = {
            "In": key in labels and labels[key] in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not is_match:
            return False
    return True


def _pod_labels(resource: dict[str, Any]) -> dict[str, str] | None:
    """The labels the controllers put on a workload's pods (KServe, training-operator v1), else None."""
    name = resource["metadata"]["name"]
    if resource["kind"] == "InferenceService":
        return {**resource["metadata"].get("labels", {}), "serving.kserve.io/inferenceservice": name}
    if resource["kind"] == "InferenceGraph":
        return {**resource["metadata"].get("labels", {}), "serving.kserve.io/inferencegraph": name}
    if resource["kind"] == "PyTorchJob":
        template = resource["spec"]["pytorchReplicaSpecs"]["Master"]["template"]
        return {**template.get("metadata", {}).get("labels", {}), "training.kubeflow.org/job-name": name}
    return None


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_cover_every_workload(overlay: str) -> None:
    resources = _render(overlay)
    policies = [r["spec"]["podSelector"] for r in resources if r["kind"] == "NetworkPolicy"]
    pods = {r["metadata"]["name"]: labels for r in resources if (labels := _pod_labels(r)) is not None}
    assert pods
    for name, labels in pods.items():
        assert any(_matches(selector, labels) for selector in policies), f"{overlay}: {name} unprotected"
    for selector in policies:
        assert any(_matches(selector, labels) for labels in pods.values()), (
            f"{overlay}: {selector} selects nothing"
        )


# --- monitoring ------------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_monitoring_is_part_of_dev_and_prod(overlay: str) -> None:
    if not (MANIFESTS / "monitoring" / "kustomization.yaml").is_file():
        pytest.skip("manifests/monitoring has no kustomization.yaml yet")
    kustomization = yaml.safe_load((MANIFESTS / "overlays" / overlay / "kustomization.yaml").read_text())
    assert "../../monitoring" in kustomization["resources"]
    monitoring = subprocess.run(
        ["kubectl", "kustomize", str(MANIFESTS / "monitoring")], capture_output=True, text=True, check=True
    ).stdout
    wanted = {(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(monitoring) if d}
    assert ("PrometheusRule", "cvops") in wanted
    assert wanted <= {(r["kind"], r["metadata"]["name"]) for r in _render(overlay)}


_MONITORING_NAMESPACE = {"kubernetes.io/metadata.name": "monitoring"}  # where Prometheus runs


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_prometheus_scrapes_pods_the_network_policy_lets_it_reach(overlay: str) -> None:
    resources = _render(overlay)
    monitors = [r for r in resources if r["kind"] == "PodMonitor"]
    pods = [labels for r in resources if (labels := _pod_labels(r)) is not None]
    policies = [r["spec"] for r in resources if r["kind"] == "NetworkPolicy"]
    assert monitors
    for monitor in monitors:
        scraped = [labels for labels in pods if _matches(monitor["spec"]["selector"], labels)]
        assert scraped, f"{monitor['metadata']['name']} selects no pod"
        open_ports = {
            port["port"]
            for policy in policies
            if all(_matches(policy["podSelector"], labels) for labels in scraped)
            for rule in policy.get("ingress", [])
            if any(
                _matches(peer.get("namespaceSelector", _NOTHING), _MONITORING_NAMESPACE)
                for peer in rule["from"]
            )
            for port in rule["ports"]
        }
        for endpoint in monitor["spec"]["podMetricsEndpoints"]:
            assert endpoint["portNumber"] in open_ports


_NOTHING = {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "DoesNotExist"}]}
