"""Deploy the challenger as a KServe canary beside the champion (locally: the canary router)."""

from kfp import dsl

from components import CVOPS_IMAGE


@dsl.component(base_image=CVOPS_IMAGE, install_kfp_package=False)
def deploy_canary(model_name: str, tracking_uri: str, canary_percent: int, target: str) -> str:
    """Send ``canary_percent`` of traffic to the challenger; return where the canary serves."""
    from cvops.loop.rollout import deploy_challenger

    return deploy_challenger(model_name, tracking_uri or None, canary_percent, target)
