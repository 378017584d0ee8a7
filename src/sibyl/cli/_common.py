"""What every command shares: settings from options, a console, progress display, errors."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console

from sibyl.errors import SibylError
from sibyl.settings import Settings, load_settings

console = Console(stderr=True)
out = Console()


def settings_from(**server: Any) -> Settings:
    """Settings from env/TOML with the given ``server``/``runtime`` options on top."""
    settings = load_settings()
    for key in ("host", "port", "workers"):
        if server.get(key) is not None:
            setattr(settings.server, key, server[key])
    if server.get("preload"):
        settings.runtime.preload = list(server["preload"])
    return settings


@contextmanager
def progress_status(first: str) -> Iterator[Callable[[str], None]]:
    """A spinner with a changing message; yields the function that changes it."""
    with console.status(first) as status:
        yield lambda msg: status.update(msg)


def fail(exc: SibylError | Exception) -> typer.Exit:
    """Print an error the way users read it and return the exit to raise."""
    message = exc.message if isinstance(exc, SibylError) else str(exc)
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=1)
