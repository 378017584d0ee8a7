"""What the training commands share: a fraction progress bar, ``key=value`` parameters,
durations like ``60s`` / ``2m``, and the MLflow coordinates from settings."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sibyl.cli._common import console, settings_from
from sibyl.errors import InvalidInputError
from sibyl.training import Progress


@contextmanager
def fraction_bar(first: str) -> Iterator[Progress]:
    """A rich progress bar driven by ``progress(fraction, message)``."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(first, total=1000)

        def report(fraction: float, message: str) -> None:
            bar.update(task, completed=int(1000 * fraction), description=message[:80])

        yield report
        bar.update(task, completed=1000)


def parse_params(pairs: list[str] | None) -> dict[str, Any]:
    """``["n_estimators=200", "criterion=entropy"]`` → a dict (values read as JSON when they
    parse, else kept as text)."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise InvalidInputError(f"--param takes key=value, got '{pair}'", field="param")
        try:
            out[key] = json.loads(text)
        except ValueError:
            out[key] = text
    return out


def parse_duration(text: str) -> float:
    """``"90"``, ``"60s"``, ``"2m"``, ``"1h"`` → seconds."""
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    value = text.strip().lower()
    factor = units.get(value[-1:])
    number = value[:-1] if factor else value
    try:
        seconds = float(number) * (factor or 1.0)
    except ValueError:
        raise InvalidInputError(
            f"Cannot read the duration '{text}' (e.g. 60s, 2m)", field="budget"
        ) from None
    if seconds <= 0:
        raise InvalidInputError(f"Duration must be positive, got '{text}'", field="budget")
    return seconds


def mlflow_target() -> tuple[str, str]:
    """(tracking URI, artifact root) from settings (data directory created)."""
    settings = settings_from()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings.tracking_uri(), settings.artifact_root()


def store_url() -> str:
    """sibyl's store URL from settings (its default SQLite file when unset)."""
    from sibyl.store import default_url

    settings = settings_from()
    return settings.store.url or default_url(settings.data_dir)


def fmt(value: Any) -> str:
    """A number for a table: integers plain, floats with 4 significant digits."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def train_on_data(data: Any, target: str | None, options: dict[str, Any]) -> None:
    """``sibyl train --data f.csv --target y``: train, register, print the outcome."""
    from pathlib import Path

    from sibyl.cli._common import fail, out, quiet_libraries
    from sibyl.errors import SibylError
    from sibyl.training import train_estimator

    if data is None or not target:
        raise fail(ValueError("give a use case, or --data <csv/parquet> and --target <column>"))
    uri, artifacts = mlflow_target()
    try:
        with quiet_libraries(), fraction_bar("training") as bar:
            outcome = train_estimator(
                data,
                target,
                name=options["name"] or Path(data).stem,
                tracking_uri=uri,
                artifact_location=artifacts,
                estimator=options["estimator"],
                params=parse_params(options["param"]),
                seed=options["seed"],
                stage=options["stage"],
                auto_promote=options["auto_promote"],
                gate_metric=options["gate_metric"],
                gate_tolerance=options["tolerance"],
                progress=bar,
            )
    except SibylError as exc:
        raise fail(exc) from exc
    metrics = ", ".join(f"{k} {fmt(v)}" for k, v in outcome.metrics.items())
    out.print(f"registered {outcome.name} v{outcome.version} ({outcome.stage}): {metrics}")
    if outcome.gate is not None:
        console.print(f"gate: {outcome.gate.message}")
