"""Alembic environment: runs on the connection ``Store.migrate()`` passes (and holds a lock on)
in ``config.attributes["connection"]``; offline mode renders SQL for ``sqlalchemy.url``."""

from __future__ import annotations

from alembic import context

from sibyl.store._schema import metadata


def _run_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError(
            "sibyl's migrations run through Store.migrate(), which passes a connection"
        )
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER much
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_offline() -> None:
    context.configure(
        url=context.config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    _run_offline()
else:
    _run_online()
