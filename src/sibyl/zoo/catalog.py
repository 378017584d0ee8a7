"""The five reference use cases by name: what ``sibyl train``, ``sibyl demo`` and the docs list.

Each :class:`UseCase` points at the module holding its ``register_all`` (see
:class:`~sibyl.zoo._registering.Registered`); the module is imported only when the use case is
trained, so listing use cases costs nothing.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from sibyl.errors import NotFoundError
from sibyl.zoo._registering import Progress, Registered, no_progress


@dataclass(frozen=True, slots=True)
class UseCase:
    """One reference use case: its CLI name, a title, its models and its trainer module."""

    name: str
    title: str
    module: str
    """Import path of the module whose ``register_all`` trains and registers its models."""
    models: tuple[str, ...]
    """Registered model names, the main one first."""
    datasets: bool = False
    """Whether its ``register_all`` takes ``datasets_dir`` (real datasets fetched at set-up)."""

    def register_all(
        self,
        tracking_uri: str,
        artifact_location: str,
        *,
        full: bool = False,
        seed: int = 0,
        progress: Progress = no_progress,
        datasets_dir: Path | None = None,
    ) -> list[Registered]:
        """Train and register this use case's models (``full``: the full-size configuration;
        ``datasets_dir``: the cache of real datasets, for the use cases that check on one)."""
        module = importlib.import_module(self.module)
        extra = {"datasets_dir": datasets_dir} if self.datasets else {}
        registered: list[Registered] = module.register_all(
            tracking_uri, artifact_location, full=full, seed=seed, progress=progress, **extra
        )
        return registered


USE_CASES: dict[str, UseCase] = {
    case.name: case
    for case in (
        UseCase(
            "dkt",
            "Knowledge tracing: DKT (LSTM) and a SAKT-style Transformer on Simulated-5",
            "sibyl.zoo.knowledge_tracing.train",
            ("dkt", "dkt-transformer"),
        ),
        UseCase(
            "calendar",
            "Calendar event classifier: TF-IDF + time features → 6 categories",
            "sibyl.zoo.calendar.train",
            ("calendar-event-classifier",),
        ),
        UseCase(
            "struggle",
            "Learning-struggle predictor: rules and incremental calibrated LR, with interventions",
            "sibyl.zoo.struggle.train",
            ("struggle", "struggle-rules", "struggle-mathplacement"),
        ),
        UseCase(
            "threat",
            "Security-threat text classifier: TF-IDF + logistic regression",
            "sibyl.zoo.threat.train",
            ("threat-text-classifier",),
            datasets=True,
        ),
        UseCase(
            "churn",
            "Churn from event-stream window features (gradient boosting); Telco real-data check",
            "sibyl.zoo.churn.train",
            ("churn", "churn-telco"),
        ),
    )
}
"""The use cases in the order ``sibyl demo`` trains them."""


def get_use_case(name: str) -> UseCase:
    """The use case called ``name``; :class:`NotFoundError` listing the valid names otherwise."""
    try:
        return USE_CASES[name]
    except KeyError:
        raise NotFoundError(f"No use case '{name}'; choose one of {', '.join(USE_CASES)}") from None
