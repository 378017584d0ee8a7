"""Access to the container from a route, and running blocking registry calls off the loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from sibyl.service import Container

T = TypeVar("T")


def container(request: Request) -> Container:
    """The app's container (set by ``create_app``)."""
    c: Container = request.app.state.container
    return c


async def blocking(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking call (MLflow client) in the thread pool."""
    return await run_in_threadpool(fn, *args, **kwargs)
