"""HTTP API (FastAPI is imported only under this package)."""

from sibyl.api.app import create_app

__all__ = ["create_app"]
