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


@contextmanager
def progress_bar(total: int, first: str) -> Iterator[Callable[[str], None]]:
    """A progress bar of ``total`` steps; each call of the yielded function starts the next
    step with a new description (the previous one counts as done)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(first, total=total)
        started = False

        def step(description: str) -> None:
            nonlocal started
            if started:
                bar.advance(task)
            started = True
            bar.update(task, description=description)

        yield step
        bar.update(task, completed=total)


def fail(exc: SibylError | Exception) -> typer.Exit:
    """Print an error the way users read it and return the exit to raise."""
    message = exc.message if isinstance(exc, SibylError) else str(exc)
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=1)
