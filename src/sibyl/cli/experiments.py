"""``sibyl experiments …``: create, list, show, start, pause, stop and results, on a server.

Every command talks to a running ``sibyl serve`` through :class:`sibyl.Client` (``--url``)::

    sibyl experiments create churn-ab --model churn \\
        --variant control=production@50 --variant candidate=7@50 \\
        --metric "success_rate >= 0.95 weight 1.0"
    sibyl experiments start churn-ab
    sibyl experiments results churn-ab
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.table import Table

from sibyl.cli._common import fail, out

app = typer.Typer(no_args_is_help=True, help="A/B/n experiments on a running server.")
UrlOpt = Annotated[str, typer.Option(help="Server URL.")]
DEFAULT_URL = "http://127.0.0.1:8000"


def parse_variant(text: str) -> dict[str, Any]:
    """``NAME=REF[@WEIGHT]``: REF all digits is a version, else an alias; weight defaults to 1."""
    name, sep, rest = text.partition("=")
    ref, _, weight = rest.partition("@")
    if not sep or not name or not ref:
        raise ValueError(f"--variant {text!r}: write NAME=VERSION|ALIAS[@WEIGHT], e.g. cand=7@50")
    try:
        w = float(weight) if weight else 1.0
    except ValueError:
        raise ValueError(f"--variant {text!r}: the weight {weight!r} is not a number") from None
    key = "version" if ref.isdigit() else "alias"
    return {"name": name, key: ref, "weight": w}


@app.command()
def create(
    name: str,
    model: Annotated[str, typer.Option(help="Model whose unpinned traffic is split.")],
    variant: Annotated[
        list[str], typer.Option(help="NAME=VERSION|ALIAS[@WEIGHT]; repeat (first = control).")
    ],
    metric: Annotated[
        list[str] | None, typer.Option(help="Success metric, e.g. 'success_rate >= 0.95'.")
    ] = None,
    control: Annotated[str | None, typer.Option(help="Control variant (default: first).")] = None,
    salt: Annotated[
        str | None, typer.Option(help="Assignment hash salt (default: random).")
    ] = None,
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """Create a draft experiment (start it to route traffic)."""
    try:
        variants = [parse_variant(v) for v in variant]
    except ValueError as exc:
        raise fail(exc) from None
    chosen = control or (variants[0]["name"] if variants else None)
    for v in variants:
        v["control"] = v["name"] == chosen
    _call(
        url,
        lambda c: c.create_experiment(
            name, model, variants, success_metrics=metric or [], salt=salt
        ),
        _print_experiment,
    )


@app.command("list")
def list_experiments(
    model: Annotated[str | None, typer.Option(help="Only this model's.")] = None,
    status: Annotated[str | None, typer.Option(help="draft|running|paused|stopped")] = None,
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """Experiments with their status and variants."""

    def show(data: Any) -> None:
        table = Table("experiment", "model", "status", "variants", "started")
        for e in data["experiments"]:
            table.add_row(e["name"], e["model"], e["status"], _variants(e), e["started_at"] or "")
        out.print(table)

    _call(url, lambda c: c.experiments(model=model, status=status), show)


@app.command()
def show(name: str, url: UrlOpt = DEFAULT_URL) -> None:
    """One experiment: status, variants, success metrics."""
    _call(url, lambda c: c.experiment(name), _print_experiment)


@app.command()
def start(name: str, url: UrlOpt = DEFAULT_URL) -> None:
    """Start (or resume) routing the model's unpinned traffic to the variants."""
    _call(url, lambda c: c.start_experiment(name), _print_experiment)


@app.command()
def pause(name: str, url: UrlOpt = DEFAULT_URL) -> None:
    """Pause: the production alias answers again."""
    _call(url, lambda c: c.pause_experiment(name), _print_experiment)


@app.command()
def stop(name: str, url: UrlOpt = DEFAULT_URL) -> None:
    """Stop for good (the records stay for the results)."""
    _call(url, lambda c: c.stop_experiment(name), _print_experiment)


@app.command()
def results(name: str, url: UrlOpt = DEFAULT_URL) -> None:
    """Per-variant numbers, comparisons with control and the decision, as tables."""
    _call(url, lambda c: c.experiment_results(name), print_results)


def print_results(data: dict[str, Any]) -> None:
    """The results document as rich tables."""
    table = Table("variant", "n", "errors", "p50 ms", "p95 ms", "p99 ms", "feedback", "metrics")
    for v in data["variants"]:
        lat = v["latency_ms"]
        metrics = ", ".join(
            f"{k}={_fmt(m.get('mean'))} (n={m['n']})" for k, m in v["metrics"].items()
        )
        label = v["name"] + (" (control)" if v["is_control"] else "")
        table.add_row(
            label, str(v["n"]), str(v["errors"]), _fmt(lat["p50"]), _fmt(lat["p95"]),
            _fmt(lat["p99"]), str(v["feedback_n"]), metrics,
        )  # fmt: skip
    out.print(table)
    comparisons = Table(
        "variant", "metric", "difference", "CI", "lift", "p", "always-valid p", "power (need n)"
    )
    for r in data["comparisons"]:
        comp = r["comparison"]
        if comp is None:
            comparisons.add_row(r["variant"], r["metric"], "not enough data", *[""] * 5)
            continue
        ci = comp["difference_ci"]
        comparisons.add_row(
            r["variant"], r["metric"], _fmt(comp["difference"]),
            f"[{_fmt(ci['low'])}, {_fmt(ci['high'])}]", _fmt(comp["relative_lift"]),
            _fmt(comp["p_value"]), _fmt(comp["always_valid_p_value"]), _power(r["power"]),
        )  # fmt: skip
    out.print(comparisons)
    srm = data.get("srm")
    if srm:
        verdict = "[bold red]MISMATCH[/]" if srm["mismatch"] else "ok"
        out.print(
            f"sample ratio: {verdict} (χ² p = {_fmt(srm['p_value'])}, counts {srm['counts']})"
        )
    decision = data.get("decision")
    if decision:
        who = f" {decision['variant']}" if decision["variant"] else ""
        out.print(f"[bold]decision:[/] {decision['verdict']}{who}")
        for reason in decision["reasons"][:5]:
            out.print(f"  · {reason['message']}")


def _power(power: dict[str, Any] | None) -> str:
    if power is None:
        return "— (set mde)"
    return f"{power['achieved_power']:.2f} ({power['required_n_per_variant']})"


def _print_experiment(e: dict[str, Any]) -> None:
    out.print(f"[bold]{e['name']}[/] on model {e['model']}: {e['status']} (salt {e['salt']})")
    table = Table("variant", "model", "version / alias", "weight", "control")
    for v in e["variants"]:
        ref = v["version"] if v["version"] is not None else f"@{v['alias']}"
        table.add_row(
            v["name"], v["model"], ref, f"{v['weight']:g}", "yes" if v["is_control"] else ""
        )
    out.print(table)
    for m in e["success_metrics"]:
        out.print(f"  metric: {m}")


def _variants(e: dict[str, Any]) -> str:
    return ", ".join(f"{v['name']}={v['weight']:g}" for v in e["variants"])


def _fmt(v: Any) -> str:
    return "—" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)


def _call(url: str, fn: Callable[[Any], Any], show: Callable[[Any], None]) -> None:
    import httpx

    from sibyl.client import Client, SibylHTTPError

    try:
        with Client(url) as client:
            data = fn(client)
    except SibylHTTPError as exc:
        raise fail(exc) from None
    except httpx.HTTPError as exc:
        raise fail(
            RuntimeError(f"cannot reach {url} ({exc}); start it with `sibyl serve`")
        ) from None
    show(data)
