"""``sibyl automl``: search model families within a time budget, print the leaderboard and
register the winner."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sibyl.cli._common import console, fail, out, quiet_libraries
from sibyl.cli._training_common import fmt, fraction_bar, mlflow_target, parse_duration
from sibyl.errors import SibylError


def automl(
    data: Annotated[Path, typer.Option(help="CSV or Parquet file.")],
    target: Annotated[str, typer.Option(help="Column to predict.")],
    budget: Annotated[str, typer.Option(help="Wall-clock budget, e.g. 60s, 5m.")] = "60s",
    name: Annotated[
        str | None, typer.Option(help="Registered model name (default: the file's stem).")
    ] = None,
    metric: Annotated[str | None, typer.Option(help="Metric (default roc_auc / rmse).")] = None,
    family: Annotated[
        list[str] | None,
        typer.Option(help="Families to try (repeat); default: every installed one."),
    ] = None,
    seed: Annotated[int, typer.Option()] = 0,
    register: Annotated[bool, typer.Option(help="Register the winner (staging).")] = True,
    auto_promote: Annotated[bool, typer.Option(help="Promote through the holdout gate.")] = False,
    tolerance: Annotated[float, typer.Option(help="Gate tolerance.")] = 0.0,
) -> None:
    """Try linear models, random forests, HistGradientBoosting, LightGBM and XGBoost with their
    hyper-parameters for ``--budget`` in total (+ 5 % at most), register the best."""
    from rich.table import Table

    from sibyl.training import automl as run_automl

    uri, artifacts = mlflow_target()
    try:
        seconds = parse_duration(budget)
        with quiet_libraries(), fraction_bar("AutoML") as bar:
            outcome = run_automl(
                data,
                target,
                name=name or data.stem,
                tracking_uri=uri,
                artifact_location=artifacts,
                budget_s=seconds,
                metric=metric,
                families=family,
                seed=seed,
                register=register,
                auto_promote=auto_promote,
                gate_tolerance=tolerance,
                progress=bar,
            )
    except SibylError as exc:
        raise fail(exc) from exc
    table = Table(
        "family",
        f"validation {outcome.metric}",
        f"holdout {outcome.metric}",
        "p99 ms (32 rows)",
        "bytes",
        "trials",
        "fit s",
        title=f"leaderboard ({outcome.trials} trials in {outcome.elapsed_s:.1f} s of "
        f"{outcome.budget_s:.0f} s)",
        title_justify="left",
    )
    for row in outcome.leaderboard:
        table.add_row(
            row.family,
            fmt(row.validation),
            fmt(row.holdout),
            fmt(row.latency_p99_ms),
            str(row.size_bytes),
            str(row.trials),
            f"{row.fit_seconds:.1f}",
        )
    out.print(table)
    if outcome.registered is not None:
        r = outcome.registered
        console.print(f"registered {r.name} v{r.version} ({r.stage}): {outcome.winner}")
