"""Fixtures shared by the store's contract tests: each test module gets its backends (SQLite in
a temporary directory, the real PostgreSQL on a fresh database) and one migrated store per
backend (tests use unique names, so they share it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sibyl.store import SQLStore
from tests.contract.store_support import Backend, postgres_backend, sqlite_backend

_POSTGRES = pytest.param("postgres", marks=pytest.mark.postgres)


@pytest.fixture(scope="module", params=["sqlite", _POSTGRES])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Backend:
    """SQLite, then the real PostgreSQL."""
    if request.param == "sqlite":
        return sqlite_backend(tmp_path_factory.mktemp("store"))
    return postgres_backend()


@pytest.fixture(scope="module")
def store(backend: Backend) -> Iterator[SQLStore]:
    """One migrated store per backend for the whole module."""
    with backend.empty() as url:
        s = SQLStore(url)
        s.migrate()
        yield s
        s.close()
