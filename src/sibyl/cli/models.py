"""``sibyl models …``: list, versions, promote, compare (registry); load/unload (server)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from sibyl.cli._common import fail, out, settings_from
from sibyl.errors import SibylError

app = typer.Typer(no_args_is_help=True, help="Models in the registry and on a server.")
UrlOpt = Annotated[str, typer.Option(help="Server URL.")]


def _registry() -> Any:
    from sibyl.registry import ModelRegistry

    settings = settings_from()
    registry = ModelRegistry(settings.tracking_uri(), registry_uri=settings.registry.registry_uri)
    if settings.promotion_gates:  # promotions from here pass the shadow gate like the server's
        from sibyl.service import ShadowGate
        from sibyl.store import get_store

        store = get_store(settings.store.url, data_dir=settings.data_dir)
        gate = ShadowGate(store, registry, settings.promotion_gates)
        registry.add_promotion_check(gate.check_promotion)
    return registry


@app.command("list")
def list_models() -> None:
    """Registered models with their aliases."""
    try:
        models = _registry().list_models()
    except SibylError as exc:
        raise fail(exc) from None
    table = Table("model", "latest", "aliases", "description")
    for m in models:
        aliases = ", ".join(f"{a}→v{v}" for a, v in sorted(m.aliases.items()))
        table.add_row(m.name, str(m.latest_version), aliases, (m.description or "")[:60])
    out.print(table)


@app.command()
def versions(name: str) -> None:
    """Versions of a model: stage, aliases, semver, created."""
    try:
        items = _registry().list_versions(name)
    except SibylError as exc:
        raise fail(exc) from None
    table = Table("version", "stage", "aliases", "semver", "created", "description")
    for v in items:
        table.add_row(
            v.version,
            v.stage.value,
            ", ".join(v.aliases),
            v.semver or "",
            v.created_at.strftime("%Y-%m-%d %H:%M"),
            (v.description or "")[:50],
        )
    out.print(table)


@app.command()
def promote(
    name: str,
    version: str,
    stage: Annotated[str, typer.Argument(help="draft|staging|production|archived")] = "production",
    metric: Annotated[str | None, typer.Option(help="Gate: metric to compare.")] = None,
    tolerance: Annotated[float, typer.Option(help="Gate: allowed worsening.")] = 0.0,
    lower_is_better: Annotated[bool, typer.Option(help="Gate: metric is a loss.")] = False,
) -> None:
    """Move a version to a stage (production by default), optionally through a metric gate.

    A running server notices the alias change and hot-swaps within its watch interval."""
    from sibyl.registry import Gate, Stage

    try:
        target = Stage(stage)
    except ValueError:
        raise fail(ValueError(f"stage must be one of {[s.value for s in Stage]}")) from None
    registry = _registry()
    try:
        if target is Stage.PRODUCTION:
            gate = Gate(metric, not lower_is_better, tolerance) if metric else None
            result = registry.promote(name, version, target, gate)
            prev = f" (previous: v{result.previous})" if result.previous else ""
            gate_msg = f"; gate: {result.gate.message}" if result.gate else ""
            out.print(f"{name} v{version} → production{prev}{gate_msg}")
        else:
            registry.set_stage(name, version, target)
            out.print(f"{name} v{version} → {target.value}")
    except SibylError as exc:
        raise fail(exc) from None


@app.command()
def compare(name: str, a: str, b: str) -> None:
    """Compare two versions: params, metrics, signature, size, flavor."""
    try:
        result = _registry().compare(name, a, b)
    except SibylError as exc:
        raise fail(exc) from None
    table = Table("", f"v{a}", f"v{b}")
    for key, (va, vb) in sorted(result.metrics.items()):
        table.add_row(f"metric {key}", _fmt(va), _fmt(vb))
    for key, pair in sorted(result.params.items()):
        table.add_row(f"param {key}", str(pair[0]), str(pair[1]))
    table.add_row("size (bytes)", *(str(s) for s in result.size_bytes))
    table.add_row(
        "flavors",
        *(", ".join(f) if isinstance(f, (list, tuple)) else str(f) for f in result.flavors),
    )
    table.add_row("signature equal", str(result.signature_equal), "")
    out.print(table)


@app.command()
def load(
    name: str,
    version: Annotated[str | None, typer.Option()] = None,
    alias: Annotated[str | None, typer.Option()] = None,
    url: UrlOpt = "http://127.0.0.1:8000",
) -> None:
    """Ask a running server to load and warm a version."""
    _server_call(url, lambda c: c.load(name, version=version, alias=alias))


@app.command()
def unload(name: str, version: str, url: UrlOpt = "http://127.0.0.1:8000") -> None:
    """Ask a running server to drain and unload a version."""
    _server_call(url, lambda c: c.unload(name, version))


def _server_call(url: str, fn: Any) -> None:
    import httpx

    from sibyl.client import Client, SibylHTTPError

    try:
        with Client(url) as client:
            out.print_json(data=fn(client))
    except SibylHTTPError as exc:
        raise fail(exc) from None
    except httpx.HTTPError as exc:
        raise fail(
            RuntimeError(f"cannot reach {url} ({exc}); start it with `sibyl serve`")
        ) from None


def _fmt(v: Any) -> str:
    return "—" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)
