"""Top-level commands: serve, demo, predict; ``models`` sub-commands live in ``models.py``."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from sibyl.cli import (
    alerts,
    automl,
    canary,
    compress,
    ensembles,
    experiments,
    jobs,
    models,
    monitoring,
    predict,
    shadow,
    train,
    tune,
    zoo,
)
from sibyl.cli._common import (
    console,
    fail,
    progress_bar,
    progress_status,
    quiet_libraries,
    settings_from,
)
from sibyl.errors import SibylError

app = typer.Typer(
    name="sibyl",
    no_args_is_help=True,
    add_completion=False,
    help="Serve every model in an MLflow registry fast, and keep it healthy.",
)
app.add_typer(models.app, name="models")
app.add_typer(zoo.app, name="zoo")
app.add_typer(experiments.app, name="experiments")
app.add_typer(ensembles.app, name="ensembles")
app.add_typer(canary.app, name="canary")
app.add_typer(shadow.app, name="shadow")
app.add_typer(monitoring.app, name="monitoring")
app.add_typer(alerts.app, name="alerts")
app.add_typer(jobs.app, name="jobs")


@app.callback()
def _configure() -> None:
    """Logs go to stderr as configured; stdout carries only command output."""
    from sibyl.logs import configure_logging

    configure_logging(settings_from().logging)


app.command("predict")(predict.predict)
app.command("train")(train.train)
app.command("tune")(tune.tune)
app.command("automl")(automl.automl)
app.command("compress")(compress.compress)
app.add_typer(tune.studies, name="studies")
app.command("worker")(jobs.worker)

HostOpt = Annotated[str | None, typer.Option(help="Interface to bind (server.host).")]
PortOpt = Annotated[int | None, typer.Option(help="Port (server.port).")]


@app.command()
def serve(
    host: HostOpt = None,
    port: PortOpt = None,
    workers: Annotated[int | None, typer.Option(help="uvicorn worker processes.")] = None,
    preload: Annotated[
        list[str] | None,
        typer.Option(help="Model to load before ready: name, name@alias or name:version."),
    ] = None,
) -> None:
    """Serve the models of the registry (native, Open Inference Protocol V2, MLflow)."""
    settings = settings_from(host=host, port=port, workers=workers, preload=preload)
    _run_server(settings)


@app.command()
def demo(
    host: HostOpt = None,
    port: PortOpt = None,
    serve: Annotated[bool, typer.Option(help="Serve after registering.")] = True,
    force: Annotated[bool, typer.Option(help="Register again even if present.")] = False,
    use_case: Annotated[
        list[str] | None,
        typer.Option(help="Train only these zoo use cases (default: all five)."),
    ] = None,
) -> None:
    """Train and register the demo models and the five zoo use cases, then serve them.

    Runs once per registry (``--force`` trains again); every model but demo-classifier v2
    (staging) goes to production.
    """
    from sibyl.cli.train import print_registered
    from sibyl.zoo.catalog import USE_CASES
    from sibyl.zoo.demo import demo_registered, demo_steps, register_demo

    cases = tuple(use_case) if use_case else tuple(USE_CASES)
    settings = settings_from(host=host, port=port)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.server.default_model is None:
        settings.server.default_model = "demo-classifier"  # what /invocations serves
    uri = settings.tracking_uri()
    try:
        with progress_status("checking the registry"):
            present = demo_registered(uri, cases)
        if force or not present:
            with (
                quiet_libraries(),
                progress_bar(demo_steps(cases), "registering the demo models") as bar,
            ):
                outcome = register_demo(
                    uri,
                    settings.artifact_root(),
                    bar,
                    bar.note,
                    use_cases=cases,
                    datasets_dir=settings.datasets_path(),
                )
            print_registered(outcome.registered, title="demo models")
            for name, error in outcome.failed.items():
                console.print(f"[bold red]use case {name} failed:[/] {error}")
        else:
            console.print(f"demo models already registered in {uri}")
    except SibylError as exc:
        raise fail(exc) from exc
    if serve:
        _run_server(settings)


def _run_server(settings: object) -> None:
    import uvicorn

    from sibyl.settings import Settings

    assert isinstance(settings, Settings)
    s = settings.server
    console.print(
        f"sibyl serving on http://{s.host}:{s.port}  (docs: /docs, metrics: /metrics)"
        f"  registry: {settings.tracking_uri()}"
    )
    common: dict[str, object] = {
        "host": s.host,
        "port": s.port,
        "loop": "uvloop",
        "http": "httptools",
        "log_level": "warning",
        "access_log": False,
        "proxy_headers": s.proxy_headers,
        "server_header": False,
        "timeout_graceful_shutdown": 10,
    }
    if s.workers > 1:  # each worker process builds its own app from the environment
        _export(settings)
        uvicorn.run("sibyl.api.app:create_app", factory=True, workers=s.workers, **common)  # type: ignore[arg-type]
        return
    from sibyl.api import create_app

    uvicorn.run(create_app(settings), **common)  # type: ignore[arg-type]


def _export(settings: object) -> None:
    """Hand CLI overrides to worker processes (they read settings from the environment)."""
    from sibyl.settings import Settings

    assert isinstance(settings, Settings)
    import json

    os.environ["SIBYL_RUNTIME__PRELOAD"] = json.dumps(settings.runtime.preload)


def main() -> None:
    """Entry point of the ``sibyl`` script."""
    app()


@app.command()
def config(markdown: Annotated[bool, typer.Option(help="Print a Markdown table.")] = False) -> None:
    """Every setting: environment variable, type, value in force, what it does."""
    from rich.table import Table

    from sibyl.cli._common import out
    from sibyl.settings import describe_settings

    rows = describe_settings(settings_from())
    if markdown:
        print("| variable | type | default | meaning |\n|---|---|---|---|")
        for env, kind, value, doc in rows:
            print(f"| `{env}` | {kind} | `{value}` | {doc.replace('|', '/')} |")
        return
    table = Table("variable", "type", "value", "meaning")
    for row in rows:
        table.add_row(*row)
    out.print(table)
