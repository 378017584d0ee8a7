"""``sibyl train <use-case>`` and the metric table every training command prints."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from sibyl.cli._common import console, fail, out, progress_bar, quiet_libraries, settings_from
from sibyl.errors import SibylError

if TYPE_CHECKING:
    from sibyl.zoo._registering import Registered

_STAGES = ("draft", "staging", "production")


def train(
    use_case: Annotated[
        str | None, typer.Argument(help="dkt, calendar, struggle, threat or churn.")
    ] = None,
    data: Annotated[
        Path | None, typer.Option(help="Train a generic estimator on this CSV/Parquet instead.")
    ] = None,
    target: Annotated[str | None, typer.Option(help="Column to predict (with --data).")] = None,
    estimator: Annotated[
        str, typer.Option(help="With --data: linear, random_forest, hist_gradient_boosting, …")
    ] = "random_forest",
    param: Annotated[
        list[str] | None, typer.Option(help="Estimator parameter key=value (repeat).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="With --data: registered model name.")] = None,
    auto_promote: Annotated[
        bool, typer.Option(help="Promote if not worse than production on the holdout.")
    ] = False,
    gate_metric: Annotated[str | None, typer.Option(help="Metric of the promotion gate.")] = None,
    tolerance: Annotated[float, typer.Option(help="Promotion gate tolerance.")] = 0.0,
    full: Annotated[
        bool, typer.Option("--full/--small", help="Full-size configuration (default: small).")
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of the data generators and models.")] = 0,
    stage: Annotated[
        str,
        typer.Option(help="Stage of the new versions: draft, staging or production."),
    ] = "staging",
) -> None:
    """Train a reference use case (or, with ``--data``/``--target``, a generic estimator),
    register its models in MLflow and print the metric table.

    New versions go to ``--stage`` (staging by default: promote them with
    ``sibyl models promote <name> <version> --metric …`` once they look right).
    """
    from sibyl.registry import ModelRegistry
    from sibyl.zoo.catalog import get_use_case

    if stage not in _STAGES:
        raise fail(ValueError(f"--stage must be one of {', '.join(_STAGES)}, got '{stage}'"))
    if data is not None or use_case is None:
        from sibyl.cli._training_common import train_on_data

        options: dict[str, Any] = {"estimator": estimator, "param": param, "name": name}
        options.update(seed=seed, stage=stage, auto_promote=auto_promote)
        options.update(gate_metric=gate_metric, tolerance=tolerance)
        train_on_data(data, target, options)
        return
    settings = settings_from()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    uri = settings.tracking_uri()
    try:
        case = get_use_case(use_case)
        size = "full-size" if full else "small"
        with quiet_libraries(), progress_bar(1, f"training {case.name} ({size})") as bar:
            bar(f"training {case.name} ({size})")
            registered = case.register_all(
                uri,
                settings.artifact_root(),
                full=full,
                seed=seed,
                progress=bar.note,
                datasets_dir=settings.datasets_path(),
            )
        registry = ModelRegistry(uri)
        for model in registered:
            registry.set_stage(model.name, model.version, stage)
    except SibylError as exc:
        raise fail(exc) from exc
    print_registered([_staged(m, stage) for m in registered], title=case.title)


def _staged(model: Registered, stage: str) -> Registered:
    from dataclasses import replace

    return replace(model, stage=stage)


def print_registered(registered: list[Registered], *, title: str = "registered") -> None:
    """One table row per registered version with its stage and held-out metrics."""
    from rich.table import Table

    table = Table("model", "version", "stage", "metrics", title=title, title_justify="left")
    for m in registered:
        metrics = ", ".join(f"{k} {_fmt(v)}" for k, v in m.metrics.items())
        table.add_row(m.name, m.version, m.stage, metrics)
    out.print(table)
    if not registered:
        console.print("nothing was registered")


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.4f}"


def engines(
    model: Annotated[
        list[str] | None, typer.Argument(help="Models to report (default: every zoo model).")
    ] = None,
) -> None:
    """Load each model's production version as ``sibyl serve`` would and report which engine
    serves it (ONNX Runtime, PyTorch, the native library, pyfunc) and why."""
    import asyncio

    from rich.table import Table

    from sibyl.zoo.catalog import USE_CASES
    from sibyl.zoo.demo import CLASSIFIER, REGRESSOR

    names = model or [CLASSIFIER, REGRESSOR, *(m for c in USE_CASES.values() for m in c.models)]
    table = Table("model", "version", "engine", "max |Δ|", "load s", "why")
    with progress_bar(len(names), "loading") as bar:
        rows = asyncio.run(_describe_all(names, bar))
    for name, info in rows:
        if "error" in info:
            table.add_row(name, "-", "[red]not loaded[/]", "", "", info["error"])
            continue
        diff = info.get("max_abs_diff")
        table.add_row(
            name,
            info["version"],
            info["engine"],
            "" if diff is None else f"{diff:.1e}",
            f"{info['load_seconds']:.2f}",
            info["engine_reason"],
        )
    out.print(table)


async def _describe_all(names: list[str], bar: Any) -> list[tuple[str, dict[str, Any]]]:
    from sibyl.service import build_container

    settings = settings_from()
    settings.runtime.preload_all_production = False
    settings.registry.watch_interval_s = 0
    container = build_container(settings)
    await container.start()
    rows: list[tuple[str, dict[str, Any]]] = []
    try:
        for name in names:
            bar(f"loading {name}")
            try:
                served = await container.manager.load(name, "production")
                rows.append((name, served.describe()))
                await container.manager.unload(name, served.version)
            except SibylError as exc:
                rows.append((name, {"error": exc.message}))
    finally:
        await container.stop()
    return rows
