"""``sibyl ensembles …``: create, list, show and stop weighted ensembles on a server.

Every command talks to a running ``sibyl serve`` through :class:`sibyl.Client` (``--url``)::

    sibyl ensembles create churn-blend --member churn:3,0.7 --member churn@staging,0.3
    sibyl predict churn-blend ...            # the endpoint is the ensemble's name
    sibyl ensembles stop churn-blend
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from sibyl.cli._common import fail, out
from sibyl.cli.experiments import DEFAULT_URL, UrlOpt, _call

app = typer.Typer(no_args_is_help=True, help="Weighted ensembles behind one endpoint.")


def parse_member(text: str) -> dict[str, Any]:
    """``[NAME=]MODEL:VERSION[,WEIGHT]`` or ``[NAME=]MODEL@ALIAS[,WEIGHT]`` (weight 1 by
    default; the name defaults to ``MODEL:VERSION`` / ``MODEL@ALIAS``)."""
    name, sep, rest = text.partition("=")
    if not sep:
        name, rest = "", text
    ref_text, _, weight = rest.partition(",")
    model, alias_sep, alias = ref_text.partition("@")
    version = None
    if not alias_sep:
        model, _, version = ref_text.rpartition(":")
    if not model or not (alias or version) or (version and not version.isdigit()):
        raise ValueError(
            f"--member {text!r}: write [NAME=]MODEL:VERSION[,WEIGHT] or MODEL@ALIAS[,WEIGHT], "
            "e.g. churn:3,0.7"
        )
    member: dict[str, Any] = {"model": model}
    member["version" if version else "alias"] = version or alias
    if name:
        member["name"] = name
    if weight:
        try:
            member["weight"] = float(weight)
        except ValueError:
            raise ValueError(f"--member {text!r}: the weight {weight!r} is not a number") from None
    return member


@app.command()
def create(
    name: str,
    member: Annotated[
        list[str],
        typer.Option(help="[NAME=]MODEL:VERSION[,WEIGHT] or MODEL@ALIAS[,WEIGHT]; repeat."),
    ],
    endpoint: Annotated[
        str | None, typer.Option(help="Model name callers use (default: NAME).")
    ] = None,
    combine: Annotated[str, typer.Option(help="auto, mean_proba or mean.")] = "auto",
    min_members: Annotated[int, typer.Option(help="Members that must answer.")] = 1,
    member_timeout_ms: Annotated[
        float | None, typer.Option(help="Per-member deadline (default: the request's).")
    ] = None,
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """Create and start an ensemble: its endpoint answers at once."""
    try:
        members = [parse_member(m) for m in member]
    except ValueError as exc:
        raise fail(exc) from None
    _call(
        url,
        lambda c: c.create_ensemble(
            name,
            members,
            endpoint=endpoint,
            combine=combine,
            min_members=min_members,
            member_timeout_ms=member_timeout_ms,
        ),
        print_ensemble,
    )


@app.command("list")
def list_ensembles(
    status: Annotated[str | None, typer.Option(help="running|stopped")] = None,
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """Ensembles with their endpoint, status and members."""

    def show(data: Any) -> None:
        table = Table("ensemble", "endpoint", "status", "task", "members")
        for e in data["ensembles"]:
            table.add_row(e["name"], e["endpoint"], e["status"], e["task"] or "", _members(e))
        out.print(table)

    _call(url, lambda c: c.ensembles(status=status), show)


@app.command()
def show(name: str, url: UrlOpt = DEFAULT_URL) -> None:
    """One ensemble: endpoint, settings and members."""
    _call(url, lambda c: c.ensemble(name), print_ensemble)


@app.command()
def stop(name: str, url: UrlOpt = DEFAULT_URL) -> None:
    """Stop an ensemble for good: its endpoint stops answering."""
    _call(url, lambda c: c.stop_ensemble(name), print_ensemble)


def print_ensemble(e: dict[str, Any]) -> None:
    """An ensemble as a title line and a members table."""
    timeout = e["member_timeout_ms"]
    out.print(
        f"[bold]{e['name']}[/] at endpoint {e['endpoint']}: {e['status']} — {e['task']}, "
        f"{e['combine']}, needs {e['min_members']} member(s)"
        + (f", {timeout:g} ms per member" if timeout else "")
    )
    table = Table("member", "model", "version / alias", "weight")
    for m in e["members"]:
        ref = m["version"] if m["version"] is not None else f"@{m['alias']}"
        table.add_row(m["name"], m["model"], ref, f"{m['weight']:g}")
    out.print(table)


def _members(e: dict[str, Any]) -> str:
    return ", ".join(f"{m['name']}×{m['weight']:g}" for m in e["members"])
