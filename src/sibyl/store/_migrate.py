"""Schema migrations with Alembic, run programmatically under a lock so that several processes
starting at once migrate exactly once (PostgreSQL advisory lock; SQLite ``BEGIN IMMEDIATE``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sibyl.store._engine import SQLITE_BEGIN, translate_errors

if TYPE_CHECKING:
    from alembic.config import Config

# alembic (≈ 130 ms to import) is imported by the functions that run it, not with sibyl.store

MIGRATIONS = Path(__file__).with_name("migrations")
# pg_advisory_lock key of sibyl's migrations (any constant no other tool uses)
ADVISORY_LOCK_KEY = 0x51B7_5709


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """An Alembic config on the shipped migrations, running on ``connection``."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    """The newest revision shipped with this sibyl."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (``None``: never migrated)."""
    from alembic.runtime.migration import MigrationContext

    with translate_errors(engine), engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def migrate(engine: Engine) -> None:
    """Bring the schema to head; a no-op when it is there, serialised across processes."""
    with translate_errors(engine):
        if engine.dialect.name == "sqlite":
            _migrate_sqlite(engine)
        else:
            _migrate_postgres(engine)


def _migrate_postgres(engine: Engine) -> None:
    lock = sa.text("SELECT pg_advisory_lock(:key)")
    unlock = sa.text("SELECT pg_advisory_unlock(:key)")
    with engine.connect() as conn:
        conn.execute(lock, {"key": ADVISORY_LOCK_KEY})
        conn.commit()
        try:
            with conn.begin():  # PostgreSQL DDL is transactional: all revisions or none
                _upgrade(conn)
        finally:
            conn.execute(unlock, {"key": ADVISORY_LOCK_KEY})
            conn.commit()


def _migrate_sqlite(engine: Engine) -> None:
    with engine.connect() as conn:
        # batch migrations recreate tables: foreign keys off, which SQLite only allows
        # outside a transaction (the raw connection is in autocommit mode, see _engine)
        raw = conn.connection.dbapi_connection
        assert raw is not None
        raw.execute("PRAGMA foreign_keys = OFF")
        try:
            conn.execution_options(**{SQLITE_BEGIN: "BEGIN IMMEDIATE"})
            with conn.begin():  # the write lock is taken first: one migrator at a time
                _upgrade(conn)
        finally:
            _restore_foreign_keys(conn, raw)


def _restore_foreign_keys(conn: sa.Connection, raw: Any) -> None:
    try:
        raw.execute("PRAGMA foreign_keys = ON")
    except Exception:  # a broken connection: never hand it back to the pool
        conn.invalidate()
        raise


def _upgrade(conn: sa.Connection) -> None:
    from alembic import command

    command.upgrade(alembic_config(conn), "head")
