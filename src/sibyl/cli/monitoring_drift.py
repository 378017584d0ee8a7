"""``sibyl monitoring profile|drift``: reference profiles and drift of a running server.

Registered on the ``sibyl monitoring`` group (``cli/monitoring.py``)::

    sibyl monitoring profile churn 3 --data reference.csv [--categorical plan]
    sibyl monitoring drift churn [--version 3]
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from sibyl.cli._common import console, fail, out
from sibyl.cli.experiments import DEFAULT_URL, UrlOpt, _call, _fmt

Columns = Annotated[list[str] | None, typer.Option(help="Repeat for several columns.")]


def profile(
    model: str,
    version: str,
    data: Annotated[
        Path, typer.Option(help="Reference data: .csv, or .json (records | columns | rows).")
    ],
    categorical: Columns = None,
    numeric: Columns = None,
    exclude: Columns = None,
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """Set VERSION's reference profile from a data file; a served version is watched against
    it at once (other replicas read it when they load the version)."""
    try:
        body = data.read_bytes()
    except OSError as exc:
        raise fail(RuntimeError(f"cannot read {data}: {exc.strerror}")) from None
    kind = "application/json" if data.suffix.lower() == ".json" else "text/csv"
    _call(
        url,
        lambda c: c.upload_profile(
            model, version, body, content_type=kind, categorical=categorical or (),
            numeric=numeric or (), exclude=exclude or (),
        ),
        _print_profile,
    )  # fmt: skip


def drift(
    model: str,
    version: Annotated[str | None, typer.Option(help="Version (default: the watched one).")] = None,
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """Drift of MODEL per column: status, PSI score, the flagging methods; the label-free
    accuracy estimate for classifiers."""
    _call(url, lambda c: c.drift(model, version=version), print_drift)


def _print_profile(data: dict[str, Any]) -> None:
    watching = "watched now" if data.get("watching") else "read at its next load"
    out.print(f"{data['model']} v{data['version']}: profile of {data['rows']} rows stored "
              f"({watching})")  # fmt: skip
    out.print(f"features: {', '.join(data['features']) or '-'}")
    if data.get("skipped"):
        out.print(f"skipped: {', '.join(data['skipped'])}")
    if data.get("ignored_columns"):
        console.print(f"not model inputs (never watched): {', '.join(data['ignored_columns'])}")


def print_drift(data: dict[str, Any]) -> None:
    """The drift report as a status line and a table of columns."""
    rows, least = data.get("rows", 0), data.get("min_rows", "-")
    out.print(f"{data['model']} v{data['version']}: [bold]{data['status']}[/] "
              f"({rows} rows in the window, judged from {least})")  # fmt: skip
    table = Table("column", "kind", "drifted", "psi", "flagged by")
    for column in [*data.get("features", []), *data.get("predictions", [])]:
        flagged = [m for m, r in column["methods"].items() if r.get("drifted")]
        table.add_row(
            column["name"], column["kind"], "yes" if column["drifted"] else "",
            _fmt(column.get("drift_score")), ", ".join(flagged),
        )  # fmt: skip
    if table.row_count:
        out.print(table)
    estimate = data.get("estimated_performance")
    if estimate:
        metrics = ", ".join(f"{k} {_fmt(v)}" for k, v in estimate["metrics"].items())
        enough = "" if estimate.get("enough_data") else " (not enough rows yet)"
        out.print(f"label-free estimate over {estimate['rows']} rows{enough}: {metrics}")
