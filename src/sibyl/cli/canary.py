"""``sibyl canary …``: start a canary rollout, watch it, abort it — on a running server.

Every command talks to ``sibyl serve`` through :class:`sibyl.Client` (``--url``)::

    sibyl canary start churn 7 --steps 10,50,100 --dwell 5m
    sibyl canary status churn-canary-v7
    sibyl canary rollback churn-canary-v7 --reason "support tickets"
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from sibyl.cli._common import fail, out
from sibyl.cli.experiments import DEFAULT_URL, UrlOpt, _call, _fmt

app = typer.Typer(no_args_is_help=True, help="Canary rollouts on a running server.")


def parse_steps(text: str) -> list[float]:
    """``"10,50,100"`` → ``[10.0, 50.0, 100.0]`` (a trailing ``%`` per step is allowed)."""
    try:
        return [float(part.strip().rstrip("%")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--steps {text!r}: write percentages such as 10,50,100") from None


def _margin(text: str | None) -> float | str | None:
    """A margin option: a number, or ``off`` to turn the check off."""
    if text is None:
        return None
    if text.strip().lower() in ("off", "none", "null"):
        return "off"
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"margin {text!r}: give a number or 'off'") from None


@app.command()
def start(
    model: str,
    version: str,
    steps: Annotated[
        str | None, typer.Option(help="Candidate share per step, e.g. 10,50,100.")
    ] = None,
    dwell: Annotated[
        str | None, typer.Option(help="Least time per step: 300, 30s, 5m, 1h.")
    ] = None,
    max_wait: Annotated[str | None, typer.Option(help="Wait past the dwell for a verdict.")] = None,
    on_timeout: Annotated[str | None, typer.Option(help="rollback (default) or promote.")] = None,
    min_requests: Annotated[int | None, typer.Option(help="Requests per arm per step.")] = None,
    error_margin: Annotated[
        str | None, typer.Option(help="Error rate rise tolerated (absolute) or 'off'.")
    ] = None,
    latency_margin: Annotated[
        str | None, typer.Option(help="Latency rise tolerated (0.2 = 20 %) or 'off'.")
    ] = None,
    quality_metric: Annotated[
        str | None, typer.Option(help="success_rate or value_mean (feedback).")
    ] = None,
    quality_margin: Annotated[
        float | None, typer.Option(help="Quality fall tolerated (absolute).")
    ] = None,
    alpha: Annotated[float | None, typer.Option(help="Level of each always-valid test.")] = None,
    name: Annotated[
        str | None, typer.Option(help="Experiment name (default <model>-canary-v<n>).")
    ] = None,
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """Start a canary of VERSION against MODEL's production version.

    The server advances it step by step, then promotes it (moves the production alias) or rolls
    it back."""
    try:
        settings = _settings(
            steps=parse_steps(steps) if steps else None,
            dwell=dwell,
            max_wait=max_wait,
            on_timeout=on_timeout,
            min_requests=min_requests,
            error_rate_margin=_margin(error_margin),
            latency_margin=_margin(latency_margin),
            quality_metric=quality_metric,
            quality_margin=quality_margin,
            alpha=alpha,
            name=name,
        )
    except ValueError as exc:
        raise fail(exc) from None
    _call(url, lambda c: c.start_canary(model, version, **settings), print_canary)


def _settings(**given: Any) -> dict[str, Any]:
    """The options that were given; a margin of ``off`` becomes ``None`` (check off)."""
    return {k: (None if v == "off" else v) for k, v in given.items() if v is not None}


@app.command()
def status(name: str, url: UrlOpt = DEFAULT_URL) -> None:
    """Phase, step, weights, the current verdict per check and the history."""
    _call(url, lambda c: c.canary(name), print_canary)


@app.command()
def rollback(
    name: str,
    reason: Annotated[str | None, typer.Option(help="Recorded in the history.")] = None,
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """Abort a canary: the baseline takes all traffic again."""
    _call(url, lambda c: c.rollback_canary(name, reason), print_canary)


def print_canary(data: dict[str, Any]) -> None:
    """The canary status document as text and tables."""
    steps = " → ".join(
        f"[bold]{s:g} %[/]" if i == data["step"] else f"{s:g} %"
        for i, s in enumerate(data["steps"])
    )
    base, cand = data["baseline"], data["candidate"]
    out.print(
        f"[bold]{data['name']}[/] on model {data['model']}: {data['phase']} — candidate v"
        f"{cand['version']} at {data['percent']:g} % against v{base['version']}  ({steps})"
    )
    if data.get("dwell_ends_at") and data["phase"] == "running":
        out.print(f"  step began {data['step_started_at']}, dwell ends {data['dwell_ends_at']}")
    if data.get("reason"):
        out.print(f"  reason: {data['reason']}")
    verdict = data.get("verdict")
    if verdict:
        _print_verdict(verdict)
    if data["history"]:
        table = Table("at", "step", "action", "reason")
        for h in data["history"]:
            table.add_row(h["at"], f"{h['percent']:g} %", h["action"], h["reason"])
        out.print(table)


def _print_verdict(verdict: dict[str, Any]) -> None:
    out.print(
        f"  verdict now: {verdict['action']} (requests: baseline {verdict['n_baseline']}, "
        f"candidate {verdict['n_candidate']}) — {verdict['reason']}"
    )
    table = Table("check", "baseline", "candidate", "worse by", "interval", "margin", "action")
    for c in verdict["checks"]:
        interval = c.get("interval")
        shown = f"[{_fmt(interval[0])}, {_fmt(interval[1])}]" if interval else c.get("note", "")
        table.add_row(
            c["name"], _fmt(c.get("baseline")), _fmt(c.get("candidate")), _fmt(c.get("worse_by")),
            shown, _fmt(c.get("margin")), c["action"],
        )  # fmt: skip
    out.print(table)
