"""Where Optuna studies live: one argument picks the backend (like ``optuna.get_storage``).

* ``None`` → in memory (one process; parallel trials in threads only);
* ``sqlite:///path.db`` → an SQLite file (several processes on one machine; every transaction
  takes the write lock up front so a queued trial is never popped twice);
* ``postgresql://…`` / ``postgres://…`` / ``postgresql+psycopg://…`` → PostgreSQL through
  psycopg 3 (many processes on many machines — ``sibyl tune`` / workers sharing it);
* an ``optuna.storages.BaseStorage`` is used as it is.

:func:`storage_for_store` puts studies beside sibyl's own records: on PostgreSQL in the schema
``sibyl_optuna`` of the store's database (Optuna keeps its own Alembic version table, which must
not meet the store's), on SQLite in ``optuna.db`` next to the store's file.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sibyl.errors import BackendUnavailableError, InvalidInputError, MissingExtraError

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

OPTUNA_SCHEMA = "sibyl_optuna"
_PG_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
SUPPORTED = "none (in memory), sqlite:///<path>, postgresql://… or an optuna storage"


def get_storage(storage: str | BaseStorage | None, *, schema: str | None = None) -> Any:
    """The Optuna storage ``storage`` designates (see the module docstring); ``schema`` puts
    the tables of a PostgreSQL storage in that schema (created if missing)."""
    from sibyl.training._strategies import require_optuna

    require_optuna()
    import optuna

    if storage is None:
        return optuna.storages.InMemoryStorage()
    if isinstance(storage, optuna.storages.BaseStorage):
        return storage
    url = str(storage)
    scheme = url.split(":", 1)[0].lower()
    if scheme in _PG_SCHEMES:
        return _postgres(url, schema)
    if scheme.startswith("sqlite"):
        return _immediate(_rdb(url, {"connect_args": {"timeout": 30}}))
    raise InvalidInputError(
        f"Tuning storage scheme '{scheme}' is not supported; use {SUPPORTED}", field="storage"
    )


def storage_for_store(store_url: str) -> Any:
    """Optuna storage beside sibyl's store at ``store_url`` (see the module docstring)."""
    scheme = store_url.split(":", 1)[0].lower()
    if scheme in _PG_SCHEMES:
        return get_storage(store_url, schema=OPTUNA_SCHEMA)
    if scheme.startswith("sqlite") and store_url.startswith("sqlite:///"):
        path = Path(store_url.removeprefix("sqlite:///"))
        return get_storage(f"sqlite:///{path.with_name('optuna.db')}")
    raise InvalidInputError(
        f"Cannot keep studies beside the store {scheme}://…; pass a storage URL", field="storage"
    )


def describe(storage: Any) -> str:
    """The storage for messages, without password."""
    if storage is None or type(storage).__name__ == "InMemoryStorage":
        return "in-memory"
    url = getattr(storage, "url", None)
    if url is None:
        return type(storage).__name__
    from sqlalchemy.engine import make_url

    return make_url(str(url)).render_as_string(hide_password=True)


def _postgres(url: str, schema: str | None) -> Any:
    import importlib.util

    if importlib.util.find_spec("psycopg") is None:
        raise MissingExtraError("psycopg", "postgres")
    rest = url.split("://", 1)[1]
    full = f"postgresql+psycopg://{rest}"
    kwargs: dict[str, Any] = {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}
    if schema:
        _create_schema(full, schema)
        kwargs["connect_args"]["options"] = f"-csearch_path={schema}"
    return _rdb(full, kwargs)


def _immediate(storage: Any) -> Any:
    """Make every SQLite transaction of ``storage`` take the write lock at BEGIN (``BEGIN
    IMMEDIATE``): SQLite ignores ``SELECT … FOR UPDATE``, so without it two workers could both
    move one queued trial from WAITING to RUNNING. (PostgreSQL locks the row.)"""
    from sqlalchemy import event

    engine = storage.engine

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # let the "begin" listener issue BEGIN

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections opened while creating the tables lack the listeners
    return storage


def _create_schema(url: str, schema: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url, connect_args={"connect_timeout": 10})
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    except sa.exc.OperationalError as exc:
        raise BackendUnavailableError(
            f"Tuning storage {describe_url(url)} cannot be reached ({exc.orig}); check the URL "
            "and that PostgreSQL runs"
        ) from exc
    finally:
        engine.dispose()


def _rdb(url: str, engine_kwargs: dict[str, Any], attempts: int = 5) -> Any:
    """An RDBStorage; creating its tables races when several workers open a new database at
    once (the loser sees "already exists"), so that is retried after a short pause."""
    import optuna
    import sqlalchemy as sa

    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
        except (sa.exc.IntegrityError, sa.exc.ProgrammingError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 * (attempt + 1))
        except (sa.exc.OperationalError, sa.exc.ArgumentError) as exc:
            raise BackendUnavailableError(
                f"Tuning storage {describe_url(url)} cannot be opened ({exc}); check the URL"
            ) from exc
    raise AssertionError("unreachable")


def describe_url(url: str) -> str:
    """``url`` without its password."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
