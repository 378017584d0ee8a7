"""Store test support: empty databases on SQLite and on this machine's PostgreSQL, and
migrations run from several processes at once. Used by ``test_store_backends.py``."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sibyl.store import Experiment, ExperimentKind, Store, Variant
from tests.contract.registry_support import fresh_database, postgres_or_skip
from tests.helpers import ROOT

__all__ = [
    "Backend",
    "ab_experiment",
    "migrate_concurrently",
    "new_name",
    "postgres_backend",
    "postgres_or_skip",
    "sqlite_backend",
]


def new_name(prefix: str = "exp") -> str:
    """An experiment name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def ab_experiment(store: Store, name: str | None = None, **kwargs: Any) -> Experiment:
    """A new A/B experiment on model ``churn``: control (alias production) vs candidate (v7)."""
    return store.create_experiment(
        name or new_name(),
        "churn",
        ExperimentKind.AB,
        [
            Variant("control", "churn", alias="production", weight=0.5, is_control=True),
            Variant("candidate", "churn", version="7", weight=0.5),
        ],
        **kwargs,
    )


@dataclass
class Backend:
    """One database technology: ``empty()`` yields the URL of a new, empty database."""

    kind: str
    empty: Callable[[], AbstractContextManager[str]]


def sqlite_backend(tmp: Path) -> Backend:
    @contextmanager
    def empty() -> Iterator[str]:
        yield f"sqlite:///{tmp / f'store-{secrets.token_hex(4)}.db'}"

    return Backend("sqlite", empty)


def postgres_backend() -> Backend:
    postgres_or_skip()
    return Backend("postgres", fresh_postgres_database)


def fresh_postgres_database() -> AbstractContextManager[str]:
    """A new PostgreSQL database with a unique name, dropped afterwards (a plain
    ``postgresql://`` URL: the store picks its driver itself)."""
    return fresh_database("sibyl_store", "postgresql")


_MIGRATOR = """
import sys, time
from sibyl.store import get_store
url, start = sys.argv[1], float(sys.argv[2])
store = get_store(url)
time.sleep(max(0.0, start - time.time()))  # every process starts migrating at the same instant
store.migrate()
print(store.schema_revision())
"""


def migrate_concurrently(url: str, processes: int = 2) -> list[subprocess.CompletedProcess[str]]:
    """Run ``get_store(url).migrate()`` in ``processes`` fresh interpreters released at once."""
    start = time.time() + 3.0  # after every interpreter has imported sibyl.store
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _MIGRATOR, url, repr(start)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=120)
        out.append(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))
    return out
