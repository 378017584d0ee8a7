"""``sibyl shadow …``: mirror traffic to a candidate, read the report, stop — on a running server.

Every command talks to ``sibyl serve`` through :class:`sibyl.Client` (``--url``)::

    sibyl shadow start churn 7 --share 0.2
    sibyl shadow report churn-shadow-7
    sibyl shadow stop churn-shadow-7
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from sibyl.cli._common import out
from sibyl.cli.experiments import DEFAULT_URL, UrlOpt, _call, _fmt

app = typer.Typer(no_args_is_help=True, help="Shadow traffic on a running server.")


@app.command()
def start(
    model: str,
    version: str,
    share: Annotated[
        float, typer.Option(help="Part of the model's unpinned traffic mirrored (0 < share ≤ 1).")
    ] = 0.1,
    name: Annotated[
        str | None, typer.Option(help="Experiment name (default: <model>-shadow-<version>).")
    ] = None,
    candidate_model: Annotated[
        str | None, typer.Option(help="The candidate is a version of this model instead.")
    ] = None,
    agreement: Annotated[
        str | None, typer.Option(help="auto (default), label or tolerance.")
    ] = None,
    tolerance: Annotated[
        float | None, typer.Option(help="|difference| allowed by the tolerance rule.")
    ] = None,
    max_concurrent: Annotated[
        int | None, typer.Option(help="Mirrors in flight; more are dropped (default 16).")
    ] = None,
    timeout_ms: Annotated[
        float | None, typer.Option(help="The candidate's own deadline (default 2000).")
    ] = None,
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """Create and start a shadow: ``share`` of the model's unpinned requests are answered as
    usual and also sent to ``version``, whose answers are compared and never returned."""
    options = {
        "agreement": agreement,
        "tolerance": tolerance,
        "max_concurrent": max_concurrent,
        "timeout_ms": timeout_ms,
    }
    config = {k: v for k, v in options.items() if v is not None}

    def go(client: Any) -> Any:
        created = client.create_shadow(
            model, version, share=share, name=name, candidate_model=candidate_model, **config
        )
        return client.start_experiment(created["name"])

    _call(url, go, _started)


@app.command()
def report(
    name: str,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON report.")] = False,
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """Mirrored, dropped, errors, agreement (95 % interval), latency p50/p95 of primary and
    candidate and their difference, and the promotion gate's verdict per candidate."""
    show = (lambda data: print(json.dumps(data, indent=2))) if as_json else print_report
    _call(url, lambda c: c.shadow_report(name), show)


@app.command()
def stop(name: str, url: UrlOpt = DEFAULT_URL) -> None:
    """Stop mirroring for good (the records stay: the report and the promotion gate read
    them)."""
    _call(url, lambda c: c.stop_experiment(name), _stopped)


def print_report(data: dict[str, Any]) -> None:
    """The report as a rich table and one verdict line per candidate."""
    cfg = data["config"]
    out.print(
        f"[bold]{data['experiment']}[/] on model {data['model']}: {data['status']}, "
        f"share {cfg['share']:g}, agreement {cfg['agreement']}"
    )
    table = Table(
        "candidate", "mirrored", "dropped", "errors", "agreement (95 % CI)",
        "p50 ms prim→cand", "p95 ms prim→cand", "Δp95",
    )  # fmt: skip
    for c in data["candidates"]:
        table.add_row(*_row(c))
    out.print(table)
    source = data["criteria"]["source"]
    for c in data["candidates"]:
        gate = c["gate"]
        verdict = "[bold green]passes[/]" if gate["passed"] else "[bold red]does not pass[/]"
        out.print(f"v{c['version']} {verdict} the promotion gate ({source})")
        for check in gate["checks"]:
            mark = "✓" if check["passed"] else "✗"
            out.print(f"  {mark} {check['message']}")


def _row(c: dict[str, Any]) -> list[str]:
    agreement = c["agreement"]
    agree = "—"
    if agreement is not None:
        agree = f"{agreement['rate']:.2%} [{agreement['low']:.2%}, {agreement['high']:.2%}]"
    lat = c["latency_ms"]
    return [
        f"{c['variant']} ({c['model']} v{c['version']})",
        str(c["mirrored"]),
        str(c["dropped"]),
        str(c["errors"]) if c["error_rate"] is None else f"{c['errors']} ({c['error_rate']:.1%})",
        agree,
        f"{_fmt(lat['primary']['p50'])} → {_fmt(lat['candidate']['p50'])}",
        f"{_fmt(lat['primary']['p95'])} → {_fmt(lat['candidate']['p95'])}",
        _fmt(lat["difference"]["p95"]),
    ]


def _started(e: dict[str, Any]) -> None:
    cand = [v for v in e["variants"] if not v["is_control"]]
    target = ", ".join(f"{v['model']} v{v['version'] or '@' + str(v['alias'])}" for v in cand)
    out.print(
        f"[bold]{e['name']}[/]: {e['status']}; mirroring {e['routing']['share']:g} of "
        f"{e['model']}'s unpinned traffic to {target}"
    )
    out.print(f"report: sibyl shadow report {e['name']}")


def _stopped(e: dict[str, Any]) -> None:
    out.print(f"[bold]{e['name']}[/]: {e['status']}")
