"""``sibyl monitoring log|replay``: browse a model's prediction log and re-score logged requests
against another version, on a running server.

Registered on the ``sibyl monitoring`` group (``cli/monitoring.py``)::

    sibyl monitoring log churn [--limit 20] [--status error] [--since 2025-03-01T00:00Z]
    sibyl monitoring replay churn 4 [--source-version 3] [--limit 5000]
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from sibyl.cli._common import out
from sibyl.cli.experiments import DEFAULT_URL, UrlOpt, _call

Since = Annotated[str | None, typer.Option(help="From this time (ISO 8601; UTC if no offset).")]
Until = Annotated[str | None, typer.Option(help="Before this time (ISO 8601).")]


def log(
    model: str,
    limit: Annotated[int, typer.Option(help="Most rows shown, newest first.")] = 20,
    status: Annotated[
        str | None, typer.Option(help="Only this status: ok, invalid, error, timeout…")
    ] = None,
    version: Annotated[str | None, typer.Option(help="Only this version.")] = None,
    request_id: Annotated[str | None, typer.Option(help="Only this request id.")] = None,
    since: Since = None,
    until: Until = None,
    inputs: Annotated[bool, typer.Option(help="Show the logged inputs too.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON.")] = False,
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """MODEL's logged prediction requests, newest first."""
    _call(
        url,
        lambda c: c.predictions(model, limit=limit, since=since, until=until, status=status,
                                version=version, request_id=request_id, inputs=inputs),
        (lambda data: out.print_json(data=data)) if as_json else print_log,
    )  # fmt: skip


def replay(
    model: str,
    version: str,
    source_version: Annotated[
        str | None, typer.Option(help="Only requests this version answered.")
    ] = None,
    since: Since = None,
    until: Until = None,
    limit: Annotated[int, typer.Option(help="The newest requests with logged inputs.")] = 1000,
    tolerance: Annotated[float, typer.Option(help="Numbers agree within this.")] = 1e-6,
    show: Annotated[int, typer.Option(help="Disagreements listed.")] = 10,
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """Re-score MODEL's logged requests with VERSION and compare with what was served."""
    options = {"source_version": source_version, "since": since, "until": until,
               "limit": limit, "tolerance": tolerance, "max_disagreements": show}  # fmt: skip
    _call(url, lambda c: c.replay(model, version, **options), print_replay)


def print_log(data: dict[str, Any]) -> None:
    """One line per logged request."""
    rows = data["predictions"]
    with_inputs = any(r.get("inputs") for r in rows)
    columns = ["time", "request", "version", "status", "rows", "ms", "answer"]
    table = Table(*columns, *(["inputs"] if with_inputs else []))
    for r in rows:
        cells = [r["ts"][:23], r["request_id"], r["version"], _status(r), str(r["n_rows"]),
                 f"{r['latency_ms']:.1f}", _short(_answer(r))]  # fmt: skip
        if with_inputs:
            cells.append(_short(r.get("inputs")))
        table.add_row(*cells)
    out.print(table)
    out.print(f"{data['count']} logged request(s) of {data['model']}")


def print_replay(data: dict[str, Any]) -> None:
    """The comparison summary and the first disagreements."""
    agreement = data["agreement"]
    prob = data["mean_abs_prob_diff"]
    out.print(
        f"{data['model']}: {data['requests']} request(s) re-scored with version "
        f"{data['target_version']}, {data['skipped']} skipped (inputs not logged), "
        f"{data['failed']} failed"
    )
    out.print(
        f"agreement {'-' if agreement is None else f'{agreement:.2%}'} over {data['rows']} "
        f"row(s); mean |Δ probability| {'-' if prob is None else f'{prob:.4f}'}"
    )
    if data["disagreements"]:
        table = Table("request", "row", "logged version", "logged", "replayed")
        for d in data["disagreements"]:
            table.add_row(d["request_id"], str(d["row"]), d["logged_version"],
                          _short(d["logged"]), _short(d["replayed"]))  # fmt: skip
        out.print(table)
    for e in data["errors"]:
        out.print(f"[red]failed[/red] {e['request_id']}: {e['error']}")


def _status(row: dict[str, Any]) -> str:
    return f"{row['status']} (fallback {row['fallback']})" if row.get("fallback") else row["status"]


def _answer(row: dict[str, Any]) -> Any:
    outputs = row.get("outputs")
    return row.get("error") if outputs is None else outputs.get("predictions")


def _short(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= width else text[: width - 1] + "…"
