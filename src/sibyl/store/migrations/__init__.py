"""Alembic environment of sibyl's store, shipped in the package and run by ``Store.migrate()``.

New revision (a developer task): from Python, ``alembic.command.revision(config, message=…,
autogenerate=True)`` with ``config = sibyl.store._migrate.alembic_config(connection)`` on a
database migrated to head; review the generated file under ``versions/`` before committing.
"""
