"""Render every Kustomize overlay and validate each resource against its CRD schema."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from cvops.serving.routing import RouterConfig
from tests.conftest import REPO_ROOT

CRDS_DIR = Path(os.environ.get("CVOPS_CRDS", str(REPO_ROOT.parent / "shared" / "crds")))
OVERLAYS = sorted(p.name for p in (REPO_ROOT / "manifests" / "overlays").iterdir() if p.is_dir())


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


def _render(overlay: str) -> list[dict[str, Any]]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl missing: needed for `kubectl kustomize`")
    out = subprocess.run(
        ["kubectl", "kustomize", str(REPO_ROOT / "manifests" / "overlays" / overlay)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_resource_matches_its_crd_schema(overlay: str) -> None:
    schemas = _schemas()
    resources = _render(overlay)
    assert resources
    for resource in resources:
        key = (resource["apiVersion"], resource["kind"])
        assert key in schemas, f"{overlay}: no CRD schema covers {key}"
        body = {k: v for k, v in resource.items() if k not in ("apiVersion", "kind", "metadata")}
        schema = _strict(schemas[key])
        schema["properties"] = {
            k: v for k, v in schema["properties"].items() if k not in ("apiVersion", "kind", "metadata")
        }
        jsonschema.validate(body, schema)


def test_unknown_field_fails_validation() -> None:
    schemas = _schemas()
    (service,) = [r for r in _render("local") if r["kind"] == "InferenceService"]
    schema = _strict(schemas[("serving.kserve.io/v1beta1", "InferenceService")])
    service["spec"]["predictor"]["canaryTraficPercent"] = 10  # misspelled
    with pytest.raises(jsonschema.ValidationError, match="canaryTraficPercent"):
        jsonschema.validate(
            {"spec": service["spec"]},
            {"type": "object", "properties": {"spec": schema["properties"]["spec"]}},
        )


def test_one_manifest_drives_cluster_and_local_router() -> None:
    (service,) = [r for r in _render("canary") if r["kind"] == "InferenceService"]
    assert RouterConfig.from_inference_service(service) == RouterConfig(
        canaryTrafficPercent=10, shadowTrafficPercent=20
    )
    assert service["spec"]["predictor"]["minReplicas"] == service["spec"]["predictor"]["maxReplicas"] == 1
