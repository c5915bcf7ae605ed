"""``python -m cvops``: the same as the ``cvops`` command."""

from cvops.cli.app import run

run()
