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


class StepBar:
    """A running progress bar of steps: calling it starts the next step with a new description
    (the previous one counts as done); :meth:`note` shows a finer message within the step."""

    def __init__(self, bar: Any, task: Any) -> None:
        self._bar, self._task = bar, task
        self._started = False
        self._step = ""

    def __call__(self, description: str) -> None:
        if self._started:
            self._bar.advance(self._task)
        self._started = True
        self._step = description
        self._bar.update(self._task, description=description)

    def note(self, message: str) -> None:
        """Show ``message`` beside the current step's description."""
        self._bar.update(self._task, description=f"{self._step} · {message}")


@contextmanager
def progress_bar(total: int, first: str) -> Iterator[StepBar]:
    """A progress bar of ``total`` steps driven by the yielded :class:`StepBar`."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(first, total=total)
        yield StepBar(bar, task)
        bar.update(task, completed=total)


@contextmanager
def quiet_libraries() -> Iterator[None]:
    """Keep MLflow's info logs and hints off the terminal while a progress bar runs (its
    warnings about pickled models and integer columns concern every zoo model alike)."""
    import logging
    import warnings

    logger = logging.getLogger("mlflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning)
            yield
    finally:
        logger.setLevel(level)


def fail(exc: SibylError | Exception) -> typer.Exit:
    """Print an error the way users read it and return the exit to raise."""
    message = exc.message if isinstance(exc, SibylError) else str(exc)
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=1)
