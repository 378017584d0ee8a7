"""``sibyl alerts …``: active alerts and alert rules of a running server (docs/alerts.md).

Every command talks to a running ``sibyl serve`` through :class:`sibyl.Client` (``--url``)::

    sibyl alerts list [--model churn] [--state firing]
    sibyl alerts rules list
    sibyl alerts rules show churn:drift
    sibyl alerts rules create --file rule.json      # one rule, or a list of rules
    sibyl alerts rules delete churn:drift
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from sibyl.cli._common import fail, out
from sibyl.cli.experiments import DEFAULT_URL, UrlOpt, _call, _fmt
from sibyl.monitoring.alerts import format_duration

app = typer.Typer(no_args_is_help=True, help="Active alerts and alert rules on a running server.")
rules = typer.Typer(no_args_is_help=True, help="Alert rules: list, show, create, delete.")
app.add_typer(rules, name="rules")


@app.command("list")
def list_alerts(
    model: Annotated[str | None, typer.Option(help="Only this model's alerts.")] = None,
    state: Annotated[
        str | None, typer.Option(help="pending, firing, resolved (comma-separated).")
    ] = None,
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """Pending and firing alerts, firing first."""
    _call(url, lambda c: c.alerts(model=model, state=state), _print_alerts)


@rules.command("list")
def list_rules(url: UrlOpt = DEFAULT_URL) -> None:
    """Every rule with its condition, window and timing."""
    _call(url, lambda c: c.alert_rules(), _print_rules)


@rules.command("show")
def show_rule(name: str, url: UrlOpt = DEFAULT_URL) -> None:
    """One rule as JSON."""
    _call(url, lambda c: c.alert_rule(name), _print_json)


@rules.command("create")
def create_rule(
    file: Annotated[Path, typer.Option(help="JSON file: one rule or a list of rules.")],
    replace: Annotated[bool, typer.Option(help="Replace rules that exist.")] = False,
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """Create the rules in FILE (docs/alerts.md shows the fields)."""
    try:
        loaded = json.loads(file.read_text())
    except OSError as exc:
        raise fail(RuntimeError(f"cannot read {file}: {exc.strerror}")) from None
    except ValueError as exc:
        raise fail(RuntimeError(f"{file} is not valid JSON: {exc}")) from None
    items = loaded if isinstance(loaded, list) else [loaded]

    def send(client: Any) -> list[Any]:
        if replace:
            return [client.replace_alert_rule(r.get("name", ""), r) for r in items]
        return [client.create_alert_rule(r) for r in items]

    _call(url, send, lambda created: _print_rules({"rules": created}))


@rules.command("delete")
def delete_rule(name: str, url: UrlOpt = DEFAULT_URL) -> None:
    """Delete a rule (its firing alerts resolve at the next evaluation)."""
    _call(url, lambda c: c.delete_alert_rule(name), lambda _: out.print(f"deleted {name}"))


def _print_alerts(data: dict[str, Any]) -> None:
    table = Table("rule", "state", "severity", "value", "since", "labels", "summary")
    for a in data["alerts"]:
        labels = ", ".join(f"{k}={v}" for k, v in a["labels"].items()
                           if k not in ("alertname", "severity"))  # fmt: skip
        table.add_row(
            a["rule"], a["state"] + (" (no data)" if a["no_data"] else ""), a["severity"],
            _fmt(a["value"]), a["fired_at"] or a["active_at"] or "", labels,
            a["annotations"].get("summary", ""),
        )  # fmt: skip
    out.print(table if table.row_count else "no active alerts")


def _print_rules(data: dict[str, Any]) -> None:
    table = Table("name", "condition", "window", "for", "keep firing", "severity", "labels", "on")
    for r in data["rules"]:
        table.add_row(
            r["name"], f"{r['metric']} {r['condition']} {_fmt(r['threshold'])}",
            format_duration(r["window"]), format_duration(r["for"]),
            format_duration(r["keep_firing_for"]), r["severity"],
            ", ".join(f"{k}={v}" for k, v in r["labels"].items()),
            "yes" if r["enabled"] else "no",
        )  # fmt: skip
    out.print(table if table.row_count else "no alert rules")


def _print_json(data: dict[str, Any]) -> None:
    out.print_json(json.dumps(data))
