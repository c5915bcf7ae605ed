"""Deploy a registered model's champion and challenger as a canary, locally or on a cluster.

``local`` (the embedded default): the champion and challenger packages of the registry's
aliases are served on 127.0.0.1 behind the canary router (``python -m serving.router``); the
router cannot change its split while running, so an update restarts it on the same port.
``cluster``: a KServe InferenceService naming the challenger's storage URI with
``canaryTrafficPercent`` is applied with the Kubernetes client.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from cvops.errors import InvalidInputError, RegistryNotFoundError, RolloutError
from cvops.offline import default_state_dir
from cvops.processes import free_port
from cvops.registry.mlflow_registry import CHALLENGER, CHAMPION, ModelRegistry
from cvops.rollout.local import (
    CanaryDeployment,
    is_running,
    read_state,
    remove_state,
    start_router,
    start_server,
    stop_process,
    write_state,
)
from cvops.rollout.manifest import (
    CustomObjectsApi,
    ServiceSpec,
    apply_inference_service,
    render_inference_service,
)

logger = logging.getLogger(__name__)

Target = Literal["local", "cluster"]
ProgressCallback = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


def alias_versions(
    registry: ModelRegistry, model_name: str, *, needs_challenger: bool = True
) -> dict[str, int]:
    """Return the versions of the ``champion`` (and ``challenger``) aliases.

    Raises:
        RegistryNotFoundError: When the model or a needed alias does not exist, naming the fix.
    """
    aliases = registry.aliases(model_name)
    needed = (CHAMPION, CHALLENGER) if needs_challenger else (CHAMPION,)
    for alias in needed:
        if alias not in aliases:
            raise RegistryNotFoundError(
                f"{model_name}: registry has no {alias!r} alias (has: {sorted(aliases) or 'none'}); "
                f"set it with `cvops registry promote {model_name} VERSION --alias {alias} --why ...`"
            )
    return aliases


def deploy_canary(
    model_name: str,
    tracking_uri: str | None = None,
    canary_percent: int = 10,
    target: Target = "local",
    *,
    shadow_percent: int = 0,
    state_dir: Path | None = None,
    port: int | None = None,
    service: ServiceSpec | None = None,
    kube_api: CustomObjectsApi | None = None,
    ready_timeout_s: float = 180.0,
    on_progress: ProgressCallback | None = None,
) -> CanaryDeployment:
    """Serve the ``champion`` alias with ``canary_percent`` of traffic going to the ``challenger`` alias.

    Args:
        model_name: Registered model name.
        tracking_uri: MLflow tracking URI; None: the embedded registry under ``state_dir``.
        canary_percent: ``canaryTrafficPercent`` (0-100).
        target: ``local`` (router on 127.0.0.1) or ``cluster`` (KServe InferenceService).
        shadow_percent: Share of champion traffic mirrored to the challenger (compared, not answered).
        state_dir: Folder of the registry cache and the deployment state; default: ``CVOPS_STATE_DIR``.
        port: Local port; default: the port of the running deployment, else a free one.
        service: InferenceService name, namespace, runtime and image (cluster).
        kube_api: A ``CustomObjectsApi`` (cluster); None: from the kubeconfig.
        ready_timeout_s: Longest wait for the local router and its two model servers.
        on_progress: Called with a short message before each step.

    Returns:
        The deployment, also written to ``<state_dir>/rollout/<model_name>.json``.

    Raises:
        RegistryNotFoundError: When the model or its champion or challenger alias is missing.
        RolloutError: When the servers do not start, or the cluster is missing or refuses.
        InvalidInputError: For a percent out of range or an unknown target.
    """
    notify = on_progress or _quiet
    _check_percent("canary_percent", canary_percent)
    _check_percent("shadow_percent", shadow_percent)
    state_dir = state_dir or default_state_dir()
    registry = ModelRegistry(tracking_uri, state_dir=state_dir)
    aliases = alias_versions(registry, model_name)
    common: dict[str, Any] = {
        "model_name": model_name,
        "mode": "canary",
        "canary_percent": canary_percent,
        "shadow_percent": shadow_percent,
        "champion_version": aliases[CHAMPION],
        "challenger_version": aliases[CHALLENGER],
        "tracking_uri": registry.tracking_uri,
    }
    if target == "cluster":
        manifest = render_inference_service(
            registry.show(model_name, CHALLENGER).source, canary_percent, shadow_percent, service
        )
        return _apply_on_cluster(
            state_dir, common, manifest, kube_api, notify, f"{canary_percent}% to the challenger"
        )
    if target != "local":
        raise InvalidInputError(f"target: expected 'local' or 'cluster', got {target!r}")
    notify(f"resolving {model_name}@champion (v{aliases[CHAMPION]}) and @challenger (v{aliases[CHALLENGER]})")
    champion_dir = registry.resolve(f"models:/{model_name}@{CHAMPION}")
    challenger_dir = registry.resolve(f"models:/{model_name}@{CHALLENGER}")
    return _start_local(
        state_dir,
        common,
        port,
        notify,
        "the canary router (two model servers; takes a few seconds)",
        lambda free, log: start_router(
            champion_dir, challenger_dir, canary_percent, shadow_percent, free, log, ready_timeout_s
        ),
    )


def deploy_champion(
    model_name: str,
    tracking_uri: str | None = None,
    target: Target = "local",
    *,
    state_dir: Path | None = None,
    port: int | None = None,
    service: ServiceSpec | None = None,
    kube_api: CustomObjectsApi | None = None,
    ready_timeout_s: float = 120.0,
    on_progress: ProgressCallback | None = None,
) -> CanaryDeployment:
    """Serve the ``champion`` alias alone: the end of a rollout (after a promotion or a rollback).

    Locally a single model server replaces the router on the same port; on a cluster the
    InferenceService names the champion's storage URI without ``canaryTrafficPercent``.

    Raises:
        RegistryNotFoundError: When the model or its champion alias is missing.
        RolloutError: When the server does not start, or the cluster is missing or refuses.
    """
    notify = on_progress or _quiet
    state_dir = state_dir or default_state_dir()
    registry = ModelRegistry(tracking_uri, state_dir=state_dir)
    aliases = alias_versions(registry, model_name, needs_challenger=False)
    common: dict[str, Any] = {
        "model_name": model_name,
        "mode": "single",
        "canary_percent": 0,
        "shadow_percent": 0,
        "champion_version": aliases[CHAMPION],
        "challenger_version": None,
        "tracking_uri": registry.tracking_uri,
    }
    if target == "cluster":
        manifest = render_inference_service(registry.show(model_name, CHAMPION).source, None, 0, service)
        return _apply_on_cluster(
            state_dir, common, manifest, kube_api, notify, f"champion v{aliases[CHAMPION]} only"
        )
    champion_dir = registry.resolve(f"models:/{model_name}@{CHAMPION}")
    return _start_local(
        state_dir,
        common,
        port,
        notify,
        "the champion's model server",
        lambda free, log: start_server(champion_dir, free, log, ready_timeout_s),
    )


def _apply_on_cluster(
    state_dir: Path,
    common: dict[str, Any],
    manifest: dict[str, Any],
    kube_api: CustomObjectsApi | None,
    notify: ProgressCallback,
    what: str,
) -> CanaryDeployment:
    """Apply a rendered InferenceService and record the cluster deployment."""
    notify(f"applying InferenceService {manifest['metadata']['name']} ({what})")
    apply_inference_service(manifest, kube_api)
    deployment = CanaryDeployment.model_validate({**common, "target": "cluster", "manifest": manifest})
    write_state(state_dir, deployment)
    return deployment


def _start_local(
    state_dir: Path,
    common: dict[str, Any],
    port: int | None,
    notify: ProgressCallback,
    what: str,
    start: Callable[[int, Path], int],
) -> CanaryDeployment:
    """Stop the previous local deployment, run ``start(port, log)`` (the PID serving) and record it."""
    model_name = str(common["model_name"])
    port = _stop_previous(state_dir, model_name, port, notify)
    log = state_dir / "rollout" / f"{model_name}.log"
    notify(f"starting {what} on 127.0.0.1:{port}")
    try:
        pid = start(port, log)
    except BaseException:
        remove_state(state_dir, model_name)  # the previous deployment is stopped: nothing runs now
        raise
    deployment = CanaryDeployment.model_validate(
        {
            **common,
            "target": "local",
            "url": f"http://127.0.0.1:{port}",
            "port": port,
            "pid": pid,
            "log": str(log),
        }
    )
    write_state(state_dir, deployment)
    return deployment


def set_cluster_split(
    deployment: CanaryDeployment,
    registry: ModelRegistry,
    canary_percent: int,
    kube_api: CustomObjectsApi | None,
) -> CanaryDeployment:
    """Re-apply a cluster canary with another split (100 before a promotion, 0 to roll back)."""
    if deployment.target != "cluster" or deployment.challenger_version is None:
        raise RolloutError(
            f"{deployment.model_name}: expected a cluster canary, got a {deployment.target} {deployment.mode}"
        )
    challenger = registry.show(deployment.model_name, deployment.challenger_version)
    manifest = render_inference_service(
        challenger.source, canary_percent, deployment.shadow_percent, _service_of(deployment)
    )
    apply_inference_service(manifest, kube_api)
    return deployment.model_copy(update={"canary_percent": canary_percent, "manifest": manifest})


def _service_of(deployment: CanaryDeployment) -> ServiceSpec:
    metadata = (deployment.manifest or {}).get("metadata", {})
    model = (deployment.manifest or {}).get("spec", {}).get("predictor", {}).get("model", {})
    defaults = ServiceSpec()
    return ServiceSpec(
        name=metadata.get("name", defaults.name),
        namespace=metadata.get("namespace", defaults.namespace),
        runtime=model.get("runtime", defaults.runtime),
        image=model.get("image"),
    )


def canary_status(model_name: str, state_dir: Path | None = None) -> tuple[CanaryDeployment | None, bool]:
    """Return the recorded deployment (None when there is none) and whether its local process runs.

    A cluster deployment reports True: its state lives in the cluster, not in a local process.
    """
    deployment = read_state(state_dir or default_state_dir(), model_name)
    if deployment is None:
        return None, False
    return deployment, deployment.target == "cluster" or is_running(deployment)


def stop_canary(model_name: str, state_dir: Path | None = None) -> bool:
    """Stop a model's local deployment by its recorded PID and remove its state file.

    Returns:
        Whether a running process was stopped (False: nothing ran; the stale state is removed).

    Raises:
        RolloutError: For a cluster deployment (delete the InferenceService with kubectl instead).
    """
    state_dir = state_dir or default_state_dir()
    deployment = read_state(state_dir, model_name)
    if deployment is None:
        return False
    if deployment.target == "cluster":
        raise RolloutError(
            f"{model_name}: deployed on a cluster; stop it there (kubectl delete inferenceservice "
            f"{_service_of(deployment).name})"
        )
    stopped = deployment.pid is not None and stop_process(deployment.pid)
    remove_state(state_dir, model_name)
    return stopped


def _stop_previous(state_dir: Path, model_name: str, port: int | None, notify: ProgressCallback) -> int:
    """Stop the model's running local deployment; return the port to use (its port by default)."""
    previous = read_state(state_dir, model_name)
    if previous is not None and previous.target == "local" and previous.pid is not None:
        if is_running(previous):
            notify(f"stopping the running deployment (pid {previous.pid}) to update it")
            stop_process(previous.pid)
        if port is None and previous.port is not None:
            port = previous.port
    return port if port is not None else free_port()


def _check_percent(name: str, value: int) -> None:
    if not 0 <= value <= 100:
        raise InvalidInputError(f"{name}: expected a percent in [0, 100], got {value}")
