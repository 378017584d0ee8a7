"""sibyl: serve every model in an MLflow registry fast, and keep it healthy."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from sibyl.client import AsyncClient, Client

__all__ = ["AsyncClient", "Client", "__version__"]


def __getattr__(name: str) -> Any:
    # lazy: `import sibyl` stays cheap (no httpx, no mlflow) for the CLI's fast paths
    if name in ("Client", "AsyncClient"):
        from sibyl import client

        return getattr(client, name)
    raise AttributeError(f"module 'sibyl' has no attribute {name!r}")
