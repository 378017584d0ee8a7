"""The ``sibyl`` command line (typer)."""

from sibyl.cli._app import app, main

__all__ = ["app", "main"]
