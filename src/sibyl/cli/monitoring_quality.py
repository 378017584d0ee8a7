"""``sibyl monitoring quality|dashboard|stats``: live quality, dashboard data and service
statistics of a running server.

Registered on the ``sibyl monitoring`` group (``cli/monitoring.py``)::

    sibyl monitoring quality churn [--window 7d] [--version 3]
    sibyl monitoring dashboard churn [--window 1h]
    sibyl monitoring stats
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from sibyl.cli._common import out
from sibyl.cli.experiments import DEFAULT_URL, UrlOpt, _call

METRICS = ("accuracy", "precision", "recall", "f1", "auc", "log_loss", "mae", "rmse")
HEALTH = {"ok": "green", "degraded": "yellow", "failing": "red"}


def quality(
    model: str,
    window: Annotated[str, typer.Option(help='Window of prediction time: "1h", "24h", "7d".')] = (
        "24h"
    ),
    version: Annotated[str | None, typer.Option(help="One version (default: all).")] = None,
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """Realised quality of MODEL per version, from feedback joined to the prediction log."""
    _call(url, lambda c: c.quality(model, window=window, version=version), print_quality)


def dashboard(
    model: str,
    window: Annotated[str | None, typer.Option(help="Statistics window.")] = None,
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """Health, statistics, hourly trend, alerts and drift of MODEL."""
    _call(url, lambda c: c.dashboard(model, window=window), print_dashboard)


def stats(url: UrlOpt = DEFAULT_URL) -> None:
    """Models loaded, memory, cache and queues of the server."""
    _call(url, lambda c: c.stats(), print_stats)


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def print_quality(data: dict[str, Any]) -> None:
    """One row per version: task, rows, coverage and every metric."""
    production = data.get("production_version")
    out.print(f"{data['model']}: quality over the last {data['window']} of predictions "
              f"(production: v{production or '-'})")  # fmt: skip
    shown = [m for m in METRICS if any(v["metrics"].get(m) is not None for v in data["versions"])]
    table = Table("version", "task", "labelled", "coverage", *shown)
    for v in data["versions"]:
        name = f"{v['version']}{' *' if v['version'] == production else ''}"
        metrics = v["metrics"]
        table.add_row(name, v["task"], str(v["labelled_rows"]), _pct(v["coverage"]),
                      *(_num(metrics.get(m)) for m in shown))  # fmt: skip
    out.print(table)


def print_dashboard(data: dict[str, Any]) -> None:
    """Health line, statistics, the hourly trend, alerts and drift."""
    health = data["health"]
    colour = HEALTH.get(health["status"], "white")
    out.print(f"{data['model']} v{data['version'] or '-'}: [bold {colour}]{health['status']}[/]"
              + (f" — {'; '.join(health['reasons'])}" if health["reasons"] else ""))  # fmt: skip
    s = data["statistics"]
    summary = Table("window", "predictions", "success rate", "mean ms", "p95 ms", "accuracy")
    summary.add_row(s["window"], str(s["total_predictions"]), _pct(s["success_rate"]),
                    _num(s["latency_mean_ms"]), _num(s["latency_p95_ms"]),
                    _num(s["accuracy"]))  # fmt: skip
    out.print(summary)
    trend = Table("hour (UTC)", "requests", "errors", "p95 ms", "accuracy", "labelled")
    for h in data["trend"]:
        if h["requests"] or h["labelled_rows"]:
            trend.add_row(h["hour"][:16], str(h["requests"]), str(h["errors"]),
                          _num(h["latency_p95_ms"]), _num(h["accuracy"] if h["accuracy"]
                          is not None else h["mae"]), str(h["labelled_rows"]))  # fmt: skip
    out.print(trend)
    for alert in data["alerts"]:
        out.print(f"alert {alert.get('rule')} [{alert.get('severity')}] {alert.get('state')}")
    out.print(f"drift: {data['drift'].get('status', 'unknown')}")


def print_stats(data: dict[str, Any]) -> None:
    """Loaded versions with memory and queues, then process memory and the cache."""
    table = Table("model", "version", "task", "engine", "memory MB", "in flight", "queued rows")
    for m in data["models"]:
        for v in m["versions"]:
            queued = sum(v["queued_rows"].values()) if v["queued_rows"] else 0
            table.add_row(m["name"], v["version"], v["task"], v["engine"],
                          f"{v['memory_bytes'] / 2**20:.1f}", str(v["inflight"]),
                          str(queued))  # fmt: skip
    out.print(table)
    memory = data["memory"]
    out.print(f"process RSS {memory['process_rss_bytes'] / 2**20:.1f} MB, "
              f"models {memory['models_bytes'] / 2**20:.1f} MB")  # fmt: skip
    cache = data.get("cache")
    if cache:
        out.print(f"cache {cache.get('backend')}: entries {cache.get('entries')}, "
                  f"counts {cache.get('counts')}")  # fmt: skip
    for name, backlog in (data.get("writers") or {}).items():
        out.print(f"writer {name}: {backlog}")
