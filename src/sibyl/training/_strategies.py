"""Search strategies and pruners by name.

============  ====================================================================
strategy      sampler
============  ====================================================================
``random``    ``RandomSampler``
``grid``      every point of the space's grid, shuffled by the seed and queued up front
              (see :meth:`SearchSpace.grid`); ``n_trials`` takes the first ones
``tpe``       ``TPESampler`` (alias ``bayesian``; multivariate, handles multi-objective)
``cmaes``     ``CmaEsSampler`` (alias ``cma-es``; categorical parameters sampled at random)
``nsga2``     ``NSGAIISampler`` (alias ``nsga-ii``; the usual choice for multi-objective)
============  ====================================================================

Pruners (single objective only — Optuna cannot prune a multi-objective trial): ``median``
(``MedianPruner``: stop a trial whose running score is worse than the median of earlier trials
at the same fold) and ``hyperband`` (``HyperbandPruner`` over the folds); ``none`` (default).
"""

from __future__ import annotations

from typing import Any

from sibyl.errors import InvalidInputError

STRATEGIES = ("random", "grid", "tpe", "cmaes", "nsga2")
PRUNERS = ("none", "median", "hyperband")
_ALIASES = {
    "bayesian": "tpe",
    "cma-es": "cmaes",
    "cma_es": "cmaes",
    "nsga-ii": "nsga2",
    "nsgaii": "nsga2",
    "nsga_ii": "nsga2",
}


def require_optuna() -> None:
    """:class:`MissingExtraError` naming the extra when Optuna is not installed."""
    import importlib.util

    from sibyl.errors import MissingExtraError

    if importlib.util.find_spec("optuna") is None:
        raise MissingExtraError("optuna", "tuning")


def canonical_strategy(name: str) -> str:
    """``name`` with aliases resolved; :class:`InvalidInputError` naming the valid ones."""
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in STRATEGIES:
        raise InvalidInputError(
            f"Unknown strategy '{name}'; use one of {', '.join(STRATEGIES)} (or bayesian)",
            field="strategy",
        )
    return key


def make_sampler(strategy: str, seed: int | None) -> Any:
    """The Optuna sampler of ``strategy`` (grid search queues its points and samples nothing
    itself, so it gets a random sampler)."""
    import optuna

    key = canonical_strategy(strategy)
    if key in ("random", "grid"):
        return optuna.samplers.RandomSampler(seed=seed)
    if key == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=5)
    if key == "cmaes":
        return optuna.samplers.CmaEsSampler(
            seed=seed, warn_independent_sampling=False, n_startup_trials=3
        )
    return optuna.samplers.NSGAIISampler(seed=seed, population_size=10)


def make_pruner(name: str | None, folds: int) -> Any:
    """The Optuna pruner ``name`` over ``folds`` steps (``None``/``none``: never prunes)."""
    import optuna

    key = (name or "none").lower()
    if key == "none":
        return optuna.pruners.NopPruner()
    if key == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0)
    if key == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(folds, 1))
    raise InvalidInputError(
        f"Unknown pruner '{name}'; use one of {', '.join(PRUNERS)}", field="pruner"
    )
