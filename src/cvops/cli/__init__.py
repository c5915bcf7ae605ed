"""Command-line interface: one module per command, registered on ``cvops.cli.app.app``."""
