"""Engines from URLs (SQLite tuned for concurrency, PostgreSQL through psycopg 3) and the
translation of driver failures into sibyl's errors."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import StaticPool

from sibyl.errors import BackendUnavailableError, InvalidInputError, MissingExtraError

SUPPORTED = "sqlite:///<path>, postgresql://… or postgresql+psycopg://…"
SQLITE_BUSY_TIMEOUT_MS = 30_000
PG_CONNECT_TIMEOUT_S = 10
# execution option naming the statement that opens a SQLite transaction (see _sqlite_events)
SQLITE_BEGIN = "sibyl_sqlite_begin"


def parse_url(url: str) -> URL:
    """``url`` as a SQLAlchemy URL on a supported driver (``postgresql://`` → psycopg 3).

    Raises :class:`InvalidInputError` for other schemes and :class:`MissingExtraError` when
    psycopg is not installed.
    """
    try:
        parsed = make_url(url)
    except exc.ArgumentError as error:
        raise _unsupported(url) from error
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        return parsed
    if parsed.drivername in ("postgresql", "postgresql+psycopg"):
        if importlib.util.find_spec("psycopg") is None:
            raise MissingExtraError("psycopg", "postgres")
        return parsed.set(drivername="postgresql+psycopg")
    raise _unsupported(url)


def _unsupported(url: str) -> InvalidInputError:
    scheme = url.split(":", 1)[0]
    return InvalidInputError(
        f"Store URL scheme '{scheme}' is not supported; use {SUPPORTED} "
        "(PostgreSQL needs `pip install 'sibyl[postgres]'`)",
        field="store_url",
    )


def create_engine(url: URL) -> Engine:
    """An engine for ``url`` (already parsed by :func:`parse_url`); connects lazily."""
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    return sa.create_engine(
        url, pool_pre_ping=True, connect_args={"connect_timeout": PG_CONNECT_TIMEOUT_S}
    )


def _sqlite_engine(url: URL) -> Engine:
    kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False}}
    if url.database in (None, "", ":memory:"):
        kwargs["poolclass"] = StaticPool  # one shared in-memory database (single-threaded tests)
    engine = sa.create_engine(url, **kwargs)
    _sqlite_events(engine)
    return engine


def _sqlite_events(engine: Engine) -> None:
    """Pragmas on every connection, and transactions opened by sibyl rather than by pysqlite
    (which defers BEGIN), so writers can ask for ``BEGIN IMMEDIATE``."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")  # before WAL switch
        _switch_to_wal(cursor)
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA synchronous = NORMAL")  # durable enough with WAL, much faster
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql(conn.get_execution_options().get(SQLITE_BEGIN, "BEGIN"))


def _switch_to_wal(cursor: Any) -> None:
    """``PRAGMA journal_mode = WAL``, retried: on a new file two processes can race to switch,
    and SQLite answers "database is locked" at once, without its busy handler."""
    import sqlite3
    import time

    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def display_url(engine: Engine) -> str:
    """The engine's URL without its password, for messages."""
    return engine.url.render_as_string(hide_password=True)


@contextmanager
def translate_errors(engine: Engine) -> Iterator[None]:
    """Turn connection failures and a missing schema into :class:`BackendUnavailableError`.

    Integrity errors are left to the caller (they mean different things per operation).
    """
    try:
        yield
    except exc.IntegrityError:
        raise
    except (exc.OperationalError, exc.InterfaceError) as error:
        raise BackendUnavailableError(_explain(engine, error)) from error
    except exc.ProgrammingError as error:
        if not _missing_table(error):
            raise
        raise BackendUnavailableError(_explain(engine, error)) from error
    except exc.TimeoutError as error:
        raise BackendUnavailableError(
            f"Every connection to the database {display_url(engine)} is busy; "
            "raise the pool size or lower the concurrency"
        ) from error


_MISSING_TABLE = re.compile(r"no such table|UndefinedTable|relation .* does not exist")


def _detail(error: exc.DBAPIError) -> str:
    text = str(error.orig).strip() if error.orig else str(error)
    return text.splitlines()[0] if text else type(error.orig).__name__


def _missing_table(error: exc.DBAPIError) -> bool:
    return bool(_MISSING_TABLE.search(f"{type(error.orig).__name__} {_detail(error)}"))


def _explain(engine: Engine, error: exc.DBAPIError) -> str:
    detail = _detail(error)
    where = display_url(engine)
    if _missing_table(error):
        return (
            f"The database {where} has no sibyl schema ({detail}); "
            "run the migrations with Store.migrate() (sibyl serve does it at start)"
        )
    if engine.url.get_backend_name() == "sqlite":
        return (
            f"Cannot use the SQLite database {where} ({detail}); check that its directory "
            "exists and is writable and that no other process holds it locked"
        )
    host = f"{engine.url.host or 'localhost'}:{engine.url.port or 5432}"
    return (
        f"Cannot reach the PostgreSQL database {where} ({detail}); check that PostgreSQL is "
        f"running and accepts connections at {host}, and that the user, password and database "
        "in the URL are right"
    )
