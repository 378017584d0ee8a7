"""Choosing a backend from a URL, and the SQLite engine's settings (no server needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sibyl.errors import InvalidInputError
from sibyl.store import SQLStore, get_store
from tests.contract.store_support import ab_experiment


def test_get_store_picks_the_backend(tmp_path: Path) -> None:
    default = get_store(None, data_dir=tmp_path / "data")
    assert isinstance(default, SQLStore) and default.url.endswith("/data/sibyl.db")
    assert get_store(default) is default
    pg = get_store("postgresql://u:secret@db.example:5433/sibyl")
    assert isinstance(pg, SQLStore) and pg.engine.dialect.driver == "psycopg"
    assert "secret" not in pg.url
    with pytest.raises(InvalidInputError, match=r"postgresql.*sibyl\[postgres\]"):
        get_store("mysql://root@localhost/sibyl")
    with pytest.raises(InvalidInputError, match="data_dir"):
        get_store(None)


def test_sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout(tmp_path: Path) -> None:
    s = SQLStore(f"sqlite:///{tmp_path / 'pragmas.db'}")
    s.migrate()  # turns foreign keys off for itself; the pool must get them back on
    for _ in range(3):  # whichever pooled connection comes out
        with s.engine.connect() as conn:
            pragma = {
                p: conn.exec_driver_sql(f"PRAGMA {p}").scalar()
                for p in ("journal_mode", "foreign_keys", "busy_timeout")
            }
        assert pragma == {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 30_000}
    s.close()


def test_sqlite_in_memory_works_for_single_threaded_use() -> None:
    s = get_store("sqlite://")
    s.migrate()
    exp = ab_experiment(s)
    assert s.get_experiment(exp.name) == exp
    s.close()
