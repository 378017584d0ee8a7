"""``sibyl monitoring …``: the prediction log, live quality, drift and exports of a server.

Commands that read a running ``sibyl serve`` take ``--url``; commands that work on files (export,
query) run in-process.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    no_args_is_help=True,
    help="Prediction log, live quality, drift, replay and exports.",
)
