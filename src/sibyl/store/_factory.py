"""``get_store``: one argument picks the backend (as optuna's ``get_storage``)."""

from __future__ import annotations

from pathlib import Path

from sibyl.errors import InvalidInputError
from sibyl.store._contract import Store
from sibyl.store._sql import SQLStore

DEFAULT_FILE = "sibyl.db"


def default_url(data_dir: Path) -> str:
    """The embedded default: ``sqlite:///<data_dir>/sibyl.db`` (absolute path)."""
    return f"sqlite:///{data_dir.resolve() / DEFAULT_FILE}"


def get_store(store: str | Store | None = None, *, data_dir: Path | None = None) -> Store:
    """The store for ``store``:

    * ``None`` → SQLite at ``<data_dir>/sibyl.db`` (``data_dir`` is created when missing);
    * ``"sqlite:///<path>"`` → that SQLite file (WAL, foreign keys, busy timeout);
    * ``"postgresql://…"`` / ``"postgresql+psycopg://…"`` → PostgreSQL via psycopg 3
      (``pip install 'sibyl[postgres]'``);
    * any other object → used as is (it must honour the :class:`Store` contract).

    No connection is made here; call :meth:`Store.migrate` before the first use. Raises
    ``InvalidInputError`` for an unknown URL scheme (the message names the supported ones) or a
    ``None`` without ``data_dir``, ``MissingExtraError`` when psycopg is not installed.
    """
    if store is None:
        if data_dir is None:
            raise InvalidInputError(
                "get_store(None) needs data_dir= (the embedded SQLite store lives there) "
                "or a database URL",
                field="store_url",
            )
        data_dir.mkdir(parents=True, exist_ok=True)
        return SQLStore(default_url(data_dir))
    if isinstance(store, str):
        return SQLStore(store)
    return store
