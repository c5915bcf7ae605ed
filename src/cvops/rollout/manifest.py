"""The InferenceService of a canary rollout: built with the KServe SDK, applied with the Kubernetes client.

KServe's canary: the spec names the *new* model (the challenger's storage URI) and
``canaryTrafficPercent``; KServe keeps the last ready revision (the champion) for the rest of
the traffic. ``canaryTrafficPercent`` 100 sends everything to the new revision; a spec without
it (rendered with ``canary_percent=None``) makes the named model the only one (promotion done).

kserve and kubernetes are imported inside functions only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from cvops.errors import InvalidInputError, RolloutError
from cvops.serving.routing import SHADOW_ANNOTATION

MODEL_FORMAT = "cvops-package"  # manifests/base/servingruntime.yaml
RUNTIME = "cvops-detector"
STREAM_AFFINITY_ANNOTATION = "cvops.io/stream-affinity"


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """What the InferenceService says besides the model and the split.

    Attributes:
        name: The InferenceService's name (kebab-case).
        namespace: Its namespace.
        runtime: The ServingRuntime serving it (``cvops-detector``: our serving image).
        image: Overrides the runtime's container image when given (e.g. ``cvops-serving:0.2.0``).
    """

    name: str = "detector"
    namespace: str = "cvops"  # the prod overlay's namespace (manifests/overlays/prod)
    runtime: str = RUNTIME
    image: str | None = None


class CustomObjectsApi(Protocol):
    """The part of ``kubernetes.client.CustomObjectsApi`` used here (a fake in tests)."""

    def get_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, name: str
    ) -> Any:
        """Read one object (raises ``ApiException`` 404 when missing)."""

    def create_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, body: dict[str, Any]
    ) -> Any:
        """Create an object."""

    def patch_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, name: str, body: dict[str, Any]
    ) -> Any:
        """Merge-patch an object."""


def render_inference_service(
    storage_uri: str, canary_percent: int | None, shadow_percent: int = 0, spec: ServiceSpec | None = None
) -> dict[str, Any]:
    """Build the InferenceService with the KServe SDK and serialize it (no cluster needed).

    Args:
        storage_uri: Where the model package to roll out lives (``s3://``, ``pvc://``, ...).
        canary_percent: ``canaryTrafficPercent`` (0-100); None: no canary, the model takes all traffic.
        shadow_percent: Mirrored share, as the ``cvops.io/shadow-traffic-percent`` annotation
            the local router also reads.
        spec: Name, namespace, runtime and image.

    Returns:
        The manifest as a dict, ready for YAML or the Kubernetes API.

    Raises:
        InvalidInputError: For a percent out of 0..100 or an empty storage URI.
    """
    from kserve import (
        V1beta1InferenceService,
        V1beta1InferenceServiceSpec,
        V1beta1ModelFormat,
        V1beta1ModelSpec,
        V1beta1PredictorSpec,
        constants,
    )
    from kubernetes.client import ApiClient, V1ObjectMeta

    spec = spec or ServiceSpec()
    for name, value in (("canary_percent", canary_percent), ("shadow_percent", shadow_percent)):
        if value is not None and not 0 <= value <= 100:
            raise InvalidInputError(f"{name}: expected a percent in [0, 100], got {value}")
    if not storage_uri:
        raise InvalidInputError("storage_uri: expected the registered model's storage URI, got ''")
    service = V1beta1InferenceService(
        api_version=f"{constants.KSERVE_GROUP}/{constants.KSERVE_V1BETA1_VERSION}",
        kind=constants.KSERVE_KIND_INFERENCESERVICE,
        metadata=V1ObjectMeta(
            name=spec.name,
            namespace=spec.namespace,
            annotations={
                SHADOW_ANNOTATION: str(shadow_percent),
                STREAM_AFFINITY_ANNOTATION: "single-replica",
            },
        ),
        spec=V1beta1InferenceServiceSpec(
            predictor=V1beta1PredictorSpec(
                # Trackers live in the server per stream: one replica (see manifests/base).
                min_replicas=1,
                max_replicas=1,
                canary_traffic_percent=canary_percent,
                model=V1beta1ModelSpec(
                    name="kserve-container",  # KServe's own container name (the SDK's default is "")
                    model_format=V1beta1ModelFormat(name=MODEL_FORMAT),
                    runtime=spec.runtime,
                    storage_uri=storage_uri,
                    image=spec.image,
                ),
            )
        ),
    )
    manifest: dict[str, Any] = ApiClient().sanitize_for_serialization(service)
    return manifest


def apply_inference_service(manifest: dict[str, Any], api: CustomObjectsApi | None = None) -> str:
    """Create the InferenceService, or merge-patch it when it exists; return ``created`` or ``patched``.

    Args:
        manifest: From :func:`render_inference_service`.
        api: A ``CustomObjectsApi``; None: one from the kubeconfig (``~/.kube/config`` or the
            in-cluster service account).

    Raises:
        RolloutError: When no cluster is configured or the API server refuses.
    """
    from kubernetes.client.exceptions import ApiException

    api = api or _cluster_api()
    group, version = manifest["apiVersion"].split("/")
    namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
    where = (group, version, namespace, "inferenceservices")
    try:
        try:
            api.get_namespaced_custom_object(*where, name)
        except ApiException as error:
            if error.status != 404:
                raise
            api.create_namespaced_custom_object(*where, manifest)
            return "created"
        api.patch_namespaced_custom_object(*where, name, manifest)
        return "patched"
    except ApiException as error:
        raise RolloutError(
            f"InferenceService {namespace}/{name}: the API server answered {error.status} {error.reason}"
        ) from error


def _cluster_api() -> CustomObjectsApi:
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    try:
        config.load_kube_config()
    except (ConfigException, OSError):
        try:
            config.load_incluster_config()
        except ConfigException as error:
            raise RolloutError(
                "target cluster: no Kubernetes cluster configured (no kubeconfig, not in a pod); "
                "use target 'local' or set KUBECONFIG"
            ) from error
    api: CustomObjectsApi = client.CustomObjectsApi()
    return api
