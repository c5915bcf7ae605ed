"""``cvops rollout``: deploy a canary (champion + challenger), show or stop it, run the A/B gate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import typer

from cvops.cli.app import app, state_dir, stderr
from cvops.cli.registry import TRACKING_URI_HELP, _registry, _who
from cvops.errors import InvalidInputError

rollout_app = typer.Typer(
    help="Canary rollouts: serve the registry's challenger beside its champion, then promote or roll back.",
    no_args_is_help=True,
)
app.add_typer(rollout_app, name="rollout")

TARGET_HELP = "local: router and model servers on 127.0.0.1 (default); cluster: a KServe InferenceService."


def _progress(message: str) -> None:
    stderr.print(f"[dim]... {message}[/dim]", highlight=False)


def _target(value: str) -> Literal["local", "cluster"]:
    if value == "local":
        return "local"
    if value == "cluster":
        return "cluster"
    raise InvalidInputError(f"--target: expected 'local' or 'cluster', got {value!r}")


@rollout_app.command("deploy")
def deploy_command(
    name: str = typer.Argument(..., help="Registered model name (its champion and challenger aliases)."),
    canary_percent: int = typer.Option(
        10, min=0, max=100, help="canaryTrafficPercent sent to the challenger."
    ),
    shadow_percent: int = typer.Option(0, min=0, max=100, help="Share of champion traffic mirrored."),
    target: str = typer.Option("local", help=TARGET_HELP),
    port: int | None = typer.Option(
        None, help="Local port; default: the running deployment's, else a free one."
    ),
    namespace: str = typer.Option("default", help="Cluster: the InferenceService's namespace."),
    service_name: str = typer.Option("detector", help="Cluster: the InferenceService's name."),
    image: str | None = typer.Option(None, help="Cluster: serving image overriding the runtime's."),
    tracking_uri: str | None = typer.Option(None, "--tracking-uri", help=TRACKING_URI_HELP),
) -> None:
    """Start (or update) the canary: champion plus challenger with a share of the traffic."""
    from cvops.rollout.deploy import deploy_canary
    from cvops.rollout.manifest import ServiceSpec

    _registry(tracking_uri)  # quiets MLflow's own logging
    deployment = deploy_canary(
        name, tracking_uri, canary_percent, _target(target),
        shadow_percent=shadow_percent, state_dir=state_dir(), port=port,
        service=ServiceSpec(name=service_name, namespace=namespace, image=image), on_progress=_progress,
    )  # fmt: skip
    where = deployment.url or f"InferenceService {namespace}/{service_name}"
    typer.echo(
        f"{name}: champion v{deployment.champion_version}, challenger v{deployment.challenger_version} "
        f"at {deployment.canary_percent}% (shadow {deployment.shadow_percent}%) on {where}"
    )


@rollout_app.command("status")
def status_command(
    name: str = typer.Argument(..., help="Registered model name."),
    as_json: bool = typer.Option(False, "--json", help="Print the deployment record as JSON."),
) -> None:
    """Show the recorded deployment and whether it is running."""
    from cvops.rollout.deploy import canary_status

    deployment, running = canary_status(name, state_dir())
    if deployment is None:
        typer.echo(f"{name}: not deployed")
        raise typer.Exit(1)
    if as_json:
        typer.echo(json.dumps({**deployment.model_dump(), "is_running": running}, indent=2))
        return
    challenger = "-" if deployment.challenger_version is None else f"v{deployment.challenger_version}"
    typer.echo(
        f"{name}: {deployment.target} {deployment.mode}, {'running' if running else 'NOT running'}; "
        f"champion v{deployment.champion_version}, challenger {challenger} at {deployment.canary_percent}% "
        f"(shadow {deployment.shadow_percent}%); url {deployment.url or '-'}; pid {deployment.pid or '-'}"
    )


@rollout_app.command("stop")
def stop_command(name: str = typer.Argument(..., help="Registered model name.")) -> None:
    """Stop the local deployment (router and model servers) by its recorded PID."""
    from cvops.rollout.deploy import stop_canary

    stopped = stop_canary(name, state_dir())
    typer.echo(f"{name}: {'stopped' if stopped else 'nothing running'}")


@rollout_app.command("gate")
def gate_command(
    name: str = typer.Argument(..., help="Registered model name."),
    heldout: Path = typer.Option(
        ..., "--heldout", help="COCO ground truth, or a folder with annotations_coco_val.json."
    ),
    replay: str = typer.Option(
        ..., "--replay", help="Video file or image folder replayed through the router."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for evidence.json and summary.html."),
    frames: int = typer.Option(50, min=1, help="Frames to replay."),
    rate: float = typer.Option(20.0, min=0.0, help="Requests started per second (0: as fast as possible)."),
    concurrency: int = typer.Option(2, min=1, help="Requests in flight."),
    max_map_drop: float = typer.Option(0.01, help="Largest tolerated mAP50-95 drop (lower CI bound)."),
    max_recall_drop: float = typer.Option(0.02, help="Largest tolerated recall@0.5 drop (lower CI bound)."),
    max_class_ap_drop: float = typer.Option(0.05, help="Largest tolerated AP50-95 drop of one class."),
    slo_p99_ms: float = typer.Option(250.0, help="p99 latency SLO of the challenger (upper CI bound)."),
    min_requests: int = typer.Option(10, min=1, help="Fewest answered requests per variant."),
    resamples: int = typer.Option(1000, min=10, help="Bootstrap resamples."),
    router_url: str | None = typer.Option(None, help="Router URL; default: the local deployment's."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Decide and write evidence; move no alias or traffic."
    ),
    who: str | None = typer.Option(None, "--who", help="Who decides; default: the current user."),
    tracking_uri: str | None = typer.Option(None, "--tracking-uri", help=TRACKING_URI_HELP),
) -> None:
    """Compare challenger and champion (held-out set + replayed traffic), then promote or roll back."""
    from cvops.rollout.decision import GateConfig
    from cvops.rollout.gate import run_ab_gate
    from cvops.rollout.replay import ReplayConfig

    _registry(tracking_uri)
    config = GateConfig(
        max_map_drop=max_map_drop, max_recall_drop=max_recall_drop, max_class_ap_drop=max_class_ap_drop,
        slo_p99_ms=slo_p99_ms, min_requests_per_variant=min_requests, n_resamples=resamples,
    )  # fmt: skip
    replay_config = ReplayConfig(max_frames=frames, rate_per_s=rate or None, concurrency=concurrency)
    decision = run_ab_gate(
        name, tracking_uri, heldout, replay, config, out, replay=replay_config, router_url=router_url,
        state_dir=state_dir(), who=_who(who), should_act=not dry_run, on_progress=_progress,
    )  # fmt: skip
    for check in decision.checks:
        typer.echo(f"  {'pass' if check.is_passed else 'FAIL'}  {check.name}: {check.detail}")
    action = " (dry run: nothing moved)" if dry_run else ""
    typer.echo(
        f"{name}: {decision.outcome.upper()} challenger v{decision.challenger_version} vs champion "
        f"v{decision.champion_version}{action}; evidence {decision.evidence_file}"
    )
