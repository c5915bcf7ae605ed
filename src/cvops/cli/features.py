"""``cvops features``: stage and apply the Feast repository, materialize, show a camera's features."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

import cvops
from cvops.cli.app import app, state_dir
from cvops.errors import InvalidInputError

features_app = typer.Typer(
    help="Per-frame and per-camera features in Feast: apply the repository, materialize, show.",
    no_args_is_help=True,
)
app.add_typer(features_app, name="features")

REPO_HELP = "The staged feature repository (default: <state folder>/feature_repo; CVOPS_STATE_DIR)."


def default_repo_dir() -> Path:
    """Return where ``cvops features apply`` stages the repository by default."""
    return state_dir() / "feature_repo"


def _declarations_dir(given: Path | None) -> Path:
    if given is not None:
        return given
    # A source checkout keeps feature_repo/ next to src/; an installed cvops has to be told.
    checkout = Path(cvops.__file__).resolve().parents[2] / "feature_repo"
    for candidate in (Path("feature_repo"), checkout):
        if (candidate / "feature_store.yaml").is_file():
            return candidate
    raise InvalidInputError("--declarations: expected the feature_repo/ folder of cvops, none found here")


def _utc(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError as error:
        raise InvalidInputError(
            f"{option}: expected an ISO time like 2026-01-31T12:00:00Z, got {text!r}"
        ) from error
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@features_app.command("apply")
def apply_command(
    repo: Path | None = typer.Option(None, "--repo", help=REPO_HELP),
    declarations: Path | None = typer.Option(
        None, help="The declarations to stage (default: ./feature_repo, else the checkout's)."
    ),
    redis: str | None = typer.Option(None, help="Use Redis HOST:PORT as the online store (default: sqlite)."),
) -> None:
    """Copy the declarations into the repository folder and run `feast apply` there."""
    from cvops.features.store import (
        OnlineStore,
        RedisOnlineStore,
        apply_feature_repo,
        list_feature_views,
        stage_feature_repo,
    )

    repo_dir = repo or default_repo_dir()
    online: OnlineStore | None = RedisOnlineStore(redis) if redis else None
    stage_feature_repo(_declarations_dir(declarations), repo_dir, online)
    apply_feature_repo(repo_dir)
    console = Console()
    for name, features in list_feature_views(repo_dir):
        console.print(f"[bold]{name}[/bold]: {', '.join(features)}", highlight=False)
    console.print(f"applied {repo_dir}", highlight=False)


@features_app.command("materialize")
def materialize_command(
    repo: Path | None = typer.Option(None, "--repo", help=REPO_HELP),
    since: str | None = typer.Option(
        None, help="Load from this ISO time (default: what is new since the last run)."
    ),
    until: str | None = typer.Option(None, help="Load up to this ISO time (default: now)."),
) -> None:
    """Load the offline features into the online store."""
    from cvops.features.store import materialize_features

    repo_dir = repo or default_repo_dir()
    end = _utc(until, "--until") or datetime.now(UTC)
    materialize_features(repo_dir, end, _utc(since, "--since"))
    Console().print(f"materialized {repo_dir} up to {end.isoformat()}", highlight=False)


@features_app.command("show")
def show_command(
    camera: str = typer.Option(..., "--camera", "-c", help="The camera id."),
    frame: int | None = typer.Option(None, "--frame", "-f", help="A frame index (default: the camera only)."),
    repo: Path | None = typer.Option(None, "--repo", help=REPO_HELP),
) -> None:
    """Print the online features of a camera, or of one of its frames."""
    from cvops.features.store import online_frame_features

    values = online_frame_features(repo or default_repo_dir(), camera, frame)
    table = Table("feature", "value", title=f"{camera}" + ("" if frame is None else f" frame {frame}"))
    for name, value in values.items():
        missing = value is None or (isinstance(value, float) and math.isnan(value))
        table.add_row(name, "-" if missing else str(value))
    Console().print(table)
