"""``cvops serve``: run a model server, or a champion/challenger pair behind the canary router."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import typer

from cvops.cli.app import app
from cvops.contracts.model_package import read_model_package
from cvops.errors import InvalidInputError
from cvops.processes import die_with_parent


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def serve(
    context: typer.Context,
    champion: str = typer.Option(
        ...,
        "--champion",
        "--model",
        help="Model package folder to serve (the champion), or a registry URI models:/NAME@ALIAS.",
    ),
    challenger: Path | None = typer.Option(None, help="Challenger package: starts the canary router."),
    canary_percent: int = typer.Option(
        0, min=0, max=100, help="canaryTrafficPercent sent to the challenger."
    ),
    shadow_percent: int = typer.Option(
        0, min=0, max=100, help="Share of champion traffic mirrored (shadow)."
    ),
    host: str = typer.Option("127.0.0.1", help="Interface to bind (loopback by default)."),
    port: int = typer.Option(8080, help="HTTP port."),
) -> None:
    """Serve detectors over KServe REST v1/v2 (and gRPC for a single model).

    Options not listed here (--api-keys-file, --jwt-algorithm, --allow-anonymous, --rate-per-s,
    --max-batch-size, ...) are passed to the server; see ``python -m serving --help``.
    """
    is_registry_uri = champion.startswith("models:/")
    if not is_registry_uri:
        read_model_package(Path(champion))  # fail in one line before starting anything
    if challenger is None:
        command = [sys.executable, "-m", "serving", "--model-dir", str(champion), "--host", host,
                   "--http-port", str(port), *context.args]  # fmt: skip
    else:
        if is_registry_uri:
            raise InvalidInputError(
                "--challenger: the canary router takes package folders, not models:/ URIs"
            )
        read_model_package(challenger)
        command = [
            sys.executable, "-m", "serving.router", "--champion", str(champion),
            "--challenger", str(challenger), "--canary-percent", str(canary_percent),
            "--shadow-percent", str(shadow_percent), "--host", host, "--port", str(port), *context.args,
        ]  # fmt: skip
    process = subprocess.Popen(command, preexec_fn=die_with_parent)
    try:
        raise typer.Exit(process.wait())
    except KeyboardInterrupt:
        process.terminate()
        raise typer.Exit(130) from None
