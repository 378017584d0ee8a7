"""``sibyl monitoring …``: the prediction log, live quality, drift and exports of a server.

Commands that read a running ``sibyl serve`` take ``--url``; commands that work on files (export,
query) run in-process.
"""

from __future__ import annotations

import typer

from sibyl.cli import monitoring_drift, monitoring_export, monitoring_log, monitoring_quality

app = typer.Typer(
    no_args_is_help=True,
    help="Prediction log, live quality, drift, replay and exports.",
)

app.command("profile")(monitoring_drift.profile)
app.command("drift")(monitoring_drift.drift)
app.command("quality")(monitoring_quality.quality)
app.command("dashboard")(monitoring_quality.dashboard)
app.command("stats")(monitoring_quality.stats)
app.command("export")(monitoring_export.export)
app.command("query")(monitoring_export.query)
app.command("log")(monitoring_log.log)
app.command("replay")(monitoring_log.replay)
