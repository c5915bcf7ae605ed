"""``cvops registry``: register model packages, move champion/challenger, show history, write cards."""

from __future__ import annotations

import getpass
import json
import logging
import subprocess
from dataclasses import asdict
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from cvops.cli.app import app, state_dir
from cvops.errors import InvalidInputError
from cvops.evaluation.gate import DEFAULT_MAX_MAP_DROP
from cvops.evaluation.release import gate_export_variants
from cvops.registry.events import AliasEvent
from cvops.registry.mlflow_registry import CHAMPION, ModelRegistry
from cvops.registry.records import Lineage, RegisteredVersion

registry_app = typer.Typer(
    help="Register model packages in MLflow, promote and roll back versions, write model cards.",
    no_args_is_help=True,
)
app.add_typer(registry_app, name="registry")

TRACKING_URI_HELP = (
    "MLflow tracking URI (http://host:5000 or sqlite:///file.db); "
    "default: the embedded sqlite registry under the state folder (CVOPS_STATE_DIR)."
)


def _registry(tracking_uri: str | None) -> ModelRegistry:
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        # MLflow logs INFO lines of its own (database migrations) unless told otherwise.
        import mlflow  # noqa: F401  (configures its logger on import; set the level after)

        logging.getLogger("mlflow").setLevel(logging.WARNING)
    return ModelRegistry(tracking_uri, state_dir=state_dir())


def _key_values(items: list[str], option: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise InvalidInputError(f"{option}: expected KEY=VALUE, got {item!r}")
        pairs[key.strip()] = value.strip()
    return pairs


def _metrics(items: list[str]) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for key, value in _key_values(items, "--metric").items():
        try:
            metrics[key] = float(value)
        except ValueError as error:
            raise InvalidInputError(f"--metric {key}: expected a number, got {value!r}") from error
    return metrics


def _evidence(items: list[str]) -> dict[str, object]:
    evidence: dict[str, object] = {}
    for key, value in _key_values(items, "--evidence").items():
        try:
            evidence[key] = float(value)
        except ValueError:
            evidence[key] = value
    return evidence


def _git_revision(folder: Path) -> str | None:
    """Return HEAD's SHA of the repository holding ``folder`` (``-dirty`` when files changed)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=10, check=False
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "diff", "--quiet", "HEAD"], cwd=folder, capture_output=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return head.stdout.strip() + ("-dirty" if dirty.returncode == 1 else "")


def _who(who: str | None) -> str:
    if who:
        return who
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in the environment or the password database
        return "unknown"


@registry_app.command("register")
def register_command(
    package: Path = typer.Argument(..., help="Model package folder (model.json + model file)."),
    name: str = typer.Option(..., "--name", "-n", help="Registered model name."),
    dataset_version: str | None = typer.Option(None, help="Id of the dataset version it was trained on."),
    dataset_uri: str | None = typer.Option(None, help="Where that dataset version lives."),
    parent: str | None = typer.Option(
        None, help="Version it was fine-tuned from (NAME/VERSION or a number)."
    ),
    training_run: str | None = typer.Option(None, help="MLflow run id of the training run."),
    pipeline_run: str | None = typer.Option(None, help="Id of the pipeline run that produced it."),
    code_revision: str | None = typer.Option(
        None, help="Git commit of the training code; default: HEAD of the current folder's repository."
    ),
    metric: list[str] = typer.Option([], "--metric", help="Evaluation result KEY=VALUE; repeat."),
    variant: list[str] = typer.Option([], "--variant", help="Export variant NAME=PACKAGE_DIR; repeat."),
    gate_data: Path | None = typer.Option(
        None,
        "--gate-data",
        help="COCO ground truth: score the package and each --variant on it; register only the variants "
        "within --max-map-drop of the package's mAP50-95 and faster (the export gate).",
    ),
    max_map_drop: float = typer.Option(DEFAULT_MAX_MAP_DROP, help="With --gate-data: largest mAP50-95 drop."),
    tracking_uri: str | None = typer.Option(None, "--tracking-uri", help=TRACKING_URI_HELP),
) -> None:
    """Register a model package (and its export variants) as a new version, with lineage."""
    lineage = Lineage(
        dataset_version=dataset_version,
        dataset_uri=dataset_uri,
        parent_version=parent,
        training_run_id=training_run,
        code_revision=code_revision or _git_revision(Path.cwd()),
        pipeline_run_id=pipeline_run,
    )
    variants = {key: Path(value) for key, value in _key_values(variant, "--variant").items()}
    metrics = _metrics(metric)
    if gate_data is not None:
        gated = gate_export_variants(package, variants, gate_data, max_map_drop)
        for variant_name, verdict in zip(variants, gated.decision.variants, strict=True):
            status = "accepted" if verdict.is_accepted else "REJECTED (not registered)"
            typer.echo(f"{variant_name}: {status}: " + "; ".join(verdict.reasons))
        variants, metrics = gated.accepted, metrics | gated.metrics
    record = _registry(tracking_uri).register(package, name, lineage, metrics, variants)
    typer.echo(f"registered {record.uri} (run {record.run_id})")


@registry_app.command("promote")
def promote_command(
    name: str = typer.Argument(..., help="Registered model name."),
    version: str = typer.Argument(..., help="Version number to promote, or an alias (e.g. challenger)."),
    why: str = typer.Option(..., "--why", help="The reason, recorded in the history."),
    who: str | None = typer.Option(None, "--who", help="Who decides; default: the current user."),
    alias: str = typer.Option(CHAMPION, "--alias", help="Alias to move: champion or challenger."),
    evidence: list[str] = typer.Option([], "--evidence", help="Supporting fact KEY=VALUE; repeat."),
    tracking_uri: str | None = typer.Option(None, "--tracking-uri", help=TRACKING_URI_HELP),
) -> None:
    """Point an alias (champion by default) at a version and record who, why and the evidence."""
    event = _registry(tracking_uri).promote(name, version, _who(who), why, _evidence(evidence), alias=alias)
    typer.echo(f"{name}@{event.alias}: {_version(event.from_version)} -> {_version(event.to_version)}")


@registry_app.command("rollback")
def rollback_command(
    name: str = typer.Argument(..., help="Registered model name."),
    why: str = typer.Option(..., "--why", help="The reason, recorded in the history."),
    who: str | None = typer.Option(None, "--who", help="Who decides; default: the current user."),
    alias: str = typer.Option(CHAMPION, "--alias", help="Alias to roll back."),
    tracking_uri: str | None = typer.Option(None, "--tracking-uri", help=TRACKING_URI_HELP),
) -> None:
    """Restore the version an alias held before its last promotion (from the recorded history)."""
    event = _registry(tracking_uri).rollback(name, _who(who), why, alias=alias)
    typer.echo(
        f"{name}@{event.alias}: {_version(event.from_version)} -> {_version(event.to_version)} (rollback)"
    )


@registry_app.command("history")
def history_command(
    name: str = typer.Argument(..., help="Registered model name."),
    alias: str | None = typer.Option(None, "--alias", help="Only this alias' events."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line instead of a table."),
    tracking_uri: str | None = typer.Option(None, "--tracking-uri", help=TRACKING_URI_HELP),
) -> None:
    """List every alias move of a model, oldest first: when, who, why, from and to version."""
    events = _registry(tracking_uri).history(name, alias)
    if as_json:
        for event in events:
            typer.echo(_event_json(event))
        return
    table = Table("#", "when (UTC)", "alias", "action", "from", "to", "who", "why", "evidence")
    for event in events:
        table.add_row(
            str(event.sequence),
            event.at.strftime("%Y-%m-%d %H:%M:%S"),
            event.alias,
            event.action,
            _version(event.from_version),
            _version(event.to_version),
            event.who,
            event.why,
            json.dumps(dict(event.evidence)) if event.evidence else "",
        )
    Console(width=200).print(table)


@registry_app.command("show")
def show_command(
    name: str = typer.Argument(..., help="Registered model name."),
    version: int | None = typer.Option(None, "--version", help="Version number."),
    alias: str | None = typer.Option(None, "--alias", help="Or an alias; default: champion."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    tracking_uri: str | None = typer.Option(None, "--tracking-uri", help=TRACKING_URI_HELP),
) -> None:
    """Show one version: aliases, lineage, metrics, variants, package summary."""
    if version is not None and alias is not None:
        raise InvalidInputError("--version and --alias: expected one of them, got both")
    record = _registry(tracking_uri).show(name, version if version is not None else alias or CHAMPION)
    if as_json:
        typer.echo(json.dumps(asdict(record), default=str, indent=2))
        return
    for line in _describe(record):
        typer.echo(line)


@registry_app.command("card")
def card_command(
    name: str = typer.Argument(..., help="Registered model name."),
    version: int = typer.Option(..., "--version", help="Version number."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for model_card.md and model_card.html."),
    template: Path | None = typer.Option(
        None, help="Markdown template for intended use and limitations, with $placeholders."
    ),
    tracking_uri: str | None = typer.Option(None, "--tracking-uri", help=TRACKING_URI_HELP),
) -> None:
    """Write a version's model card (Markdown and HTML) locally and beside the version in MLflow."""
    from cvops.registry.model_card import DEFAULT_TEMPLATE, write_model_card

    text = DEFAULT_TEMPLATE
    if template is not None:
        try:
            text = template.read_text(encoding="utf-8")
        except OSError as error:
            raise InvalidInputError(f"--template {template}: cannot read: {error.strerror}") from error
    files = write_model_card(_registry(tracking_uri), name, version, out, text)
    typer.echo(f"wrote {files.markdown} and {files.html}; stored at {files.artifact_uri}")


def _version(version: int | None) -> str:
    return "-" if version is None else str(version)


def _event_json(event: AliasEvent) -> str:
    return json.dumps(json.loads(event.to_json()), sort_keys=True)


def _describe(record: RegisteredVersion) -> list[str]:
    lines = [
        f"{record.uri}{'' if record.is_complete else '  (registration incomplete)'}",
        f"  aliases: {', '.join(record.aliases) or 'none'}",
        f"  registered: {record.created_at:%Y-%m-%d %H:%M:%S} UTC, run {record.run_id}",
        f"  source: {record.source}",
    ]
    lines += [f"  {key}: {value}" for key, value in record.package.items() if key != "class_names"]
    lines += [
        f"  lineage.{key}: {value}" for key, value in asdict(record.lineage).items() if value is not None
    ]
    lines += [f"  metric {key}: {value:.6g}" for key, value in record.metrics.items()]
    if record.variants:
        lines.append(f"  variants: {', '.join(record.variants)}")
    return lines
