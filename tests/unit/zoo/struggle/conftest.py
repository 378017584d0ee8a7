"""Shared, module-cached training runs (each takes a fraction of a second to a few seconds)."""

from __future__ import annotations

import pytest

from sibyl.zoo.struggle.train import SMALL_STUDENTS, StruggleTraining, train


@pytest.fixture(scope="session")
def trained() -> StruggleTraining:
    """Both models on the small configuration (500 training, 500 test students), seed 0."""
    return train(SMALL_STUDENTS, seed=0)
