"""The ``cvops`` command: the edge that reads arguments and environment, then calls cvops.

Every :class:`~cvops.errors.CvopsError` ends as one line on stderr and exit code 2.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.text import Text
from typer.exceptions import Abort, Exit, TyperException

from cvops import __version__
from cvops.errors import CvopsError
from cvops.offline import configure_offline, default_state_dir

app = typer.Typer(
    name="cvops",
    help="Computer vision in production: detect, track, export, serve and improve models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
stderr = Console(stderr=True)

EXIT_CVOPS_ERROR = 2


def state_dir() -> Path:
    """Return the folder for library state (``CVOPS_STATE_DIR``, else ``~/.cache/cvops``)."""
    return default_state_dir()


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at DEBUG level.")) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


@app.command()
def version() -> None:
    """Print the cvops version."""
    typer.echo(__version__)


def register_commands() -> None:
    """Import every module of ``cvops.cli``: each registers its commands on :data:`app` on import.

    Command modules import their heavy dependencies inside the command bodies, so this is cheap.
    """
    import cvops.cli

    for module in pkgutil.iter_modules(cvops.cli.__path__):
        importlib.import_module(f"cvops.cli.{module.name}")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code; CvopsError becomes one line on stderr."""
    register_commands()
    configure_offline(state_dir())
    try:
        # Without standalone mode click returns (not raises) the code of ``typer.Exit(code)``.
        code = app(args=argv, prog_name="cvops", standalone_mode=False)
    except CvopsError as error:
        # Text, not markup: messages hold brackets such as ``cvops[tensorrt]``.
        stderr.print(Text.assemble(("error:", "red"), f" {error}"), highlight=False, soft_wrap=True)
        return EXIT_CVOPS_ERROR
    except TyperException as error:  # a usage error: unknown command or option, bad value
        show = getattr(error, "show", None)
        if callable(show):
            show()
        else:
            stderr.print(Text.assemble(("error:", "red"), f" {error.format_message()}"), highlight=False)
        return 2
    except Exit as error:
        return error.exit_code
    except Abort:
        stderr.print("aborted")
        return 130
    return code if isinstance(code, int) else 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
