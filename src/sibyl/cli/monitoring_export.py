"""``sibyl monitoring export`` and ``sibyl monitoring query``: the prediction log (joined with
feedback) to Parquet, and ad-hoc SQL over the export with DuckDB. Both run in-process (no server)::

    sibyl monitoring export --out exports --model churn --since 2025-05-01 --until 2025-05-07
    sibyl monitoring query "SELECT version, avg(latency_ms) FROM predictions GROUP BY 1" \\
        --data exports

Need ``pip install 'sibyl[analytics]'``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import typer
from rich.table import Table

from sibyl.cli._common import console, fail, out
from sibyl.errors import MissingExtraError, SibylError

DAY_FORMATS = ["%Y-%m-%d"]


def _export_module() -> ModuleType:
    try:
        from sibyl.monitoring import export
    except ImportError as error:  # a transitive dependency of the extra is missing
        raise fail(MissingExtraError(error.name or "pyarrow", "analytics")) from None
    except SibylError as error:
        raise fail(error) from None
    return export


def export(
    out_dir: Annotated[Path, typer.Option("--out", help="Export root directory.")],
    model: Annotated[str | None, typer.Option(help="Only this model (default: all).")] = None,
    since: Annotated[
        datetime | None, typer.Option(formats=DAY_FORMATS, help="First UTC day (YYYY-MM-DD).")
    ] = None,
    until: Annotated[
        datetime | None,
        typer.Option(formats=DAY_FORMATS, help="Last UTC day, included (YYYY-MM-DD)."),
    ] = None,
    store_url: Annotated[
        str | None,
        typer.Option(help="Database of the prediction log (default: the configured store)."),
    ] = None,
) -> None:
    """Export the prediction log joined with feedback to Parquet, by model and UTC day."""
    module = _export_module()
    from sibyl.settings import load_settings
    from sibyl.store import get_store

    settings = load_settings()
    try:
        store = get_store(store_url or settings.store.url, data_dir=settings.data_dir)
    except SibylError as error:
        raise fail(error) from None
    try:
        where = module.LogFilter(
            model, since.date() if since else None, until.date() if until else None
        )
        total = module.count_log_rows(module.engine_of(store), where)
        with _progress(total) as advance:
            report = module.export_log(
                store, out_dir, model=where.model, since=where.since, until=where.until,
                on_progress=advance,
            )  # fmt: skip
            advance(report)
    except SibylError as error:
        raise fail(error) from None
    finally:
        store.close()
    _print_report(report)


@contextmanager
def _progress(total: int) -> Iterator[Any]:
    """A rich progress bar of log rows read; yields the ``on_progress`` callback."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("exporting"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} log rows · {task.fields[rows]} rows written"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("export", total=total, rows=0)

        def advance(report: Any) -> None:
            bar.update(task, completed=report.log_rows, rows=report.rows)

        yield advance
        bar.update(task, completed=total)


def _print_report(report: Any) -> None:
    if not report.partitions:
        out.print("No prediction log rows matched; nothing was written.")
        return
    table = Table("model", "day", "rows", "files", title=f"Exported to {report.out}")
    for p in report.partitions:
        table.add_row(p.model, p.day, str(p.rows), str(p.files))
    out.print(table)
    out.print(
        f"{report.rows} rows from {report.log_rows} log records in {report.files} files; "
        f'query them with `sibyl monitoring query "SELECT … FROM predictions" '
        f"--data {report.out}`"
    )


def query(
    sql: Annotated[str, typer.Argument(help="SQL over the view `predictions`.")],
    data: Annotated[Path, typer.Option(help="Export root directory (sibyl monitoring export).")],
    csv: Annotated[bool, typer.Option("--csv", help="Print CSV instead of a table.")] = False,
    max_rows: Annotated[int, typer.Option(help="Rows shown in the table (CSV: all).")] = 100,
) -> None:
    """Run SQL with DuckDB over an export (view `predictions`; DESCRIBE it for columns)."""
    module = _export_module()
    try:
        frame = module.query(sql, data)
    except SibylError as error:
        raise fail(error) from None
    if csv:
        typer.echo(frame.to_csv(index=False), nl=False)
        return
    table = Table(*[str(c) for c in frame.columns])
    for row in frame.head(max_rows).itertuples(index=False):
        table.add_row(*[_cell(v) for v in row])
    out.print(table)
    if len(frame) > max_rows:
        out.print(f"… {len(frame) - max_rows} more rows (raise --max-rows, or use --csv)")


def _cell(value: Any) -> str:
    import pandas as pd

    if value is None or (not isinstance(value, list | tuple) and pd.isna(value)):
        return ""
    if isinstance(value, pd.Timestamp) and value.tz is None and value == value.normalize():
        return value.date().isoformat()  # a DATE (DuckDB hands dates over as timestamps)
    return f"{value:.6g}" if isinstance(value, float) else str(value)
