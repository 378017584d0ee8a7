"""``sibyl compress <model> <version>``: prune a tree ensemble or int8-quantize a torch
model, report before/after and register the result as a new version."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sibyl.cli._common import console, fail, out, quiet_libraries
from sibyl.cli._training_common import fmt, fraction_bar, mlflow_target
from sibyl.errors import SibylError


def compress(
    model: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[str, typer.Argument(help="Version to compress.")],
    tolerance: Annotated[
        float, typer.Option(help="Largest metric loss allowed (absolute).")
    ] = 0.01,
    metric: Annotated[str | None, typer.Option(help="Metric kept within the tolerance.")] = None,
    data: Annotated[
        Path | None,
        typer.Option(help="Validation CSV/Parquet (default: the holdout logged at training)."),
    ] = None,
    target: Annotated[str | None, typer.Option(help="Target column of --data.")] = None,
    stage: Annotated[str, typer.Option(help="Stage of the new version.")] = "staging",
    register: Annotated[bool, typer.Option(help="Register the compressed model.")] = True,
) -> None:
    """Compress a model version (tree pruning or dynamic int8 quantization) into a new one."""
    from rich.table import Table

    from sibyl.training import compress_model

    uri, artifacts = mlflow_target()
    try:
        with quiet_libraries(), fraction_bar("compressing") as bar:
            outcome = compress_model(
                model,
                version,
                tracking_uri=uri,
                artifact_location=artifacts,
                tolerance=tolerance,
                metric=metric,
                data=data,
                target=target,
                stage=stage,
                register=register,
                progress=bar,
            )
    except SibylError as exc:
        raise fail(exc) from exc
    r = outcome.report
    table = Table(
        "",
        "before",
        "after",
        title=f"{model} v{outcome.source_version}: {r.detail}",
        title_justify="left",
    )
    table.add_row(r.metric or "metric", fmt(r.metric_before), fmt(r.metric_after))
    table.add_row("size (bytes)", str(r.size_before), str(r.size_after))
    table.add_row("p99 latency (ms)", fmt(r.latency_p99_ms_before), fmt(r.latency_p99_ms_after))
    out.print(table)
    if outcome.version is not None:
        console.print(
            f"registered {model} v{outcome.version} ({outcome.stage}), "
            f"compressed from v{outcome.source_version}"
        )
