"""The promotion gate of training: the candidate must not be worse than production on the
chosen metric by more than a tolerance, both measured on the **candidate's holdout**.

The current production version is downloaded and scored on the very rows the candidate was
evaluated on (so a lucky or unlucky split cannot decide), then the registry's own rule decides
(:func:`sibyl.registry.evaluate_gate`): no production version → passes; worse by more than
``tolerance`` → refused. A production version that cannot score the holdout (other columns, a
flavor without ``predict``) refuses, saying to promote by hand. A passed gate moves the
candidate to production through :meth:`ModelRegistry.promote` — the registry's promotion
checks (e.g. a shadow gate) still apply and may refuse too.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sibyl.errors import NotFoundError, PromotionRefusedError, SibylError
from sibyl.training._data import Task
from sibyl.training._metrics import higher_is_better, score

if TYPE_CHECKING:
    import pandas as pd

    from sibyl.registry import ModelRegistry


@dataclass(frozen=True, slots=True)
class GateDecision:
    """What the gate measured and decided, and whether the candidate was promoted."""

    metric: str
    tolerance: float
    passed: bool
    promoted: bool
    candidate: float | None
    production: float | None
    production_version: str | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)


def production_version(registry: ModelRegistry, name: str) -> str | None:
    """The version ``name``'s production alias points at, or None."""
    try:
        return registry.resolve(name, "production").version
    except NotFoundError:
        return None


def load_version(registry: ModelRegistry, name: str, version: str) -> Any:
    """Version ``version`` of ``name`` as a Python object with ``predict`` (the scikit-learn
    model when it has that flavor, else its pyfunc), downloaded into a temporary directory."""
    import mlflow.pyfunc
    import mlflow.sklearn
    import yaml

    with tempfile.TemporaryDirectory(prefix="sibyl-gate-") as tmp:
        path = registry.download(name, version, tmp)
        flavors = yaml.safe_load((Path(path) / "MLmodel").read_text()).get("flavors", {})
        if "sklearn" in flavors:
            return mlflow.sklearn.load_model(str(path))
        return mlflow.pyfunc.load_model(str(path))


def holdout_gate(
    registry: ModelRegistry,
    name: str,
    candidate: Any,
    holdout: tuple[pd.DataFrame, pd.Series[Any]],
    task: Task,
    *,
    metric: str,
    tolerance: float = 0.0,
) -> GateDecision:
    """Score ``candidate`` and the production version of ``name`` on ``holdout`` and decide
    (nothing is promoted here; ``promoted`` is False)."""
    from sibyl.registry import Gate, evaluate_gate

    gate = Gate(metric, higher_is_better(metric), tolerance)
    x, y = holdout
    cand = score(candidate, x, y, task, metric)
    current = production_version(registry, name)
    if current is None:
        result = evaluate_gate(gate, cand, None, None)
        return _decision(gate, result.passed, cand, None, None, result.message)
    try:
        prod = score(load_version(registry, name, current), x, y, task, metric)
    except (SibylError, ValueError, KeyError, TypeError, AttributeError) as exc:
        message = (
            f"production version {current} cannot score the candidate's holdout ({exc}); "
            f"compare them yourself and promote with `sibyl models promote {name} <version>`"
        )
        return _decision(gate, False, cand, None, current, message)
    result = evaluate_gate(gate, cand, prod, current)
    message = f"{result.message} (both on the candidate's {len(x)}-row holdout)"
    return _decision(gate, result.passed, cand, prod, current, message)


def promote_if_passed(
    registry: ModelRegistry, name: str, version: str, decision: GateDecision
) -> GateDecision:
    """Promote ``version`` to production when ``decision`` passed; the decision with
    ``promoted`` set (a promotion check refusing leaves it False and says why)."""
    from dataclasses import replace

    if not decision.passed:
        return decision
    try:
        registry.promote(name, version, "production")
    except PromotionRefusedError as exc:
        return replace(decision, passed=False, message=f"{decision.message}; {exc.message}")
    return replace(decision, promoted=True)


def _decision(
    gate: Any,
    passed: bool,
    candidate: float | None,
    production: float | None,
    version: str | None,
    message: str,
) -> GateDecision:
    return GateDecision(
        gate.metric, gate.tolerance, passed, False, candidate, production, version, message
    )
