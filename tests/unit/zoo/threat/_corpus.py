"""Where the tests find the SpamAssassin cache that ``scripts/fetch-datasets.sh`` fills."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sibyl.zoo.threat import spam

ROOT = Path(__file__).resolve().parents[4]
FETCH_SCRIPT = ROOT / "scripts" / "fetch-datasets.sh"


def datasets_dir() -> Path:
    """The cache the fetch script fills (``SIBYL_DATASETS_DIR`` or ``<repo>/.sibyl/datasets``)."""
    return Path(os.environ.get("SIBYL_DATASETS_DIR") or ROOT / ".sibyl" / "datasets")


def require_corpus() -> Path:
    """The cache holding the corpus; skips without it, fails under ``CI=true``."""
    where = datasets_dir()
    if spam.corpus_available(where):
        return where
    message = f"SpamAssassin corpus not in {where}; run `bash scripts/fetch-datasets.sh`"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)
