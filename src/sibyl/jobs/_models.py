"""Where a job gets its models: :class:`ModelSource`.

Batch scoring uses the very predictors online serving uses. In ``sibyl serve`` the source is
the server's own model manager (``sibyl.service._jobmodels.ServingModels``): rows go through the
version's batcher in its LOW lane, so online requests always go first. In a ``sibyl worker``
process it is :class:`LocalModels`: versions loaded by sibyl's runtime (ONNX Runtime when the
model compiles and verifies, native otherwise), called directly from the job thread.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from sibyl.runtime.types import Batch, Prediction, Task

if TYPE_CHECKING:
    from sibyl.registry import ModelRegistry
    from sibyl.runtime.loader import LoadedModel
    from sibyl.runtime.schema import InputSchema
    from sibyl.settings import Settings


class ScoringModel(Protocol):
    """One loaded version a job scores with. ``predict`` blocks and is safe to call from
    several job threads (implementations serialise calls where the predictor needs it)."""

    name: str
    version: str
    schema: InputSchema
    task: Task
    classes: tuple[Any, ...] | None

    def predict(self, batch: Batch) -> Prediction:
        """Predict every row of ``batch`` (raises ``PredictionError`` on a model failure)."""
        ...


class ModelSource(Protocol):
    """Resolves references and opens versions for jobs (thread-safe, blocking)."""

    def resolve(self, model: str, ref: str | None) -> str:
        """The version number ``ref`` (number, alias, ``None`` = production) designates;
        ``NotFoundError`` saying how to fix it."""
        ...

    def open(self, model: str, version: str) -> ScoringModel:
        """The loaded version (loading it on first use); ``NotFoundError``/``ModelLoadError``."""
        ...


class _Direct:
    """A loaded version called in the job thread, one call at a time."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        self.name, self.version = loaded.name, loaded.version
        self.schema, self.task, self.classes = loaded.schema, loaded.task, loaded.classes
        self._lock = threading.Lock()

    def predict(self, batch: Batch) -> Prediction:
        with self._lock:  # a predictor is called by one thread at a time (runtime contract)
            out = self.loaded.predict(batch)
        if len(out) != len(batch):
            raise ValueError(f"model returned {len(out)} rows for {len(batch)}")
        return out


class LocalModels:
    """:class:`ModelSource` loading versions in this process (``sibyl worker``); keeps the
    ``keep`` most recently used versions. Concurrent opens of one version share one load."""

    def __init__(
        self, settings: Settings, registry: ModelRegistry | None = None, *, keep: int = 2
    ) -> None:
        self.settings = settings
        self._registry = registry
        self._keep = keep
        self._models: OrderedDict[tuple[str, str], _Direct] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[tuple[str, str], threading.Lock] = {}

    @property
    def registry(self) -> ModelRegistry:
        """The MLflow registry (opened on first use)."""
        if self._registry is None:
            from sibyl.registry import ModelRegistry

            s = self.settings
            self._registry = ModelRegistry(
                s.tracking_uri(),
                registry_uri=s.registry.registry_uri,
                artifact_location=s.artifact_root(),
            )
        return self._registry

    def resolve(self, model: str, ref: str | None) -> str:
        return self.registry.resolve(model, ref).version

    def open(self, model: str, version: str) -> ScoringModel:
        key = (model, version)
        with self._lock:
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:
            with self._lock:
                found = self._models.get(key)
                if found is not None:
                    self._models.move_to_end(key)
                    return found
            direct = _Direct(self._load(model, version))
            with self._lock:
                self._models[key] = direct
                while len(self._models) > self._keep:
                    self._models.popitem(last=False)
            return direct

    def _load(self, model: str, version: str) -> LoadedModel:
        from sibyl.runtime.loader import load_model

        info = self.registry.get_version(model, version)
        path = self.registry.download(model, version, self.settings.download_dir())
        return load_model(
            path, name=model, version=version, settings=self.settings.runtime, tags=info.tags
        )


def concat_predictions(parts: Sequence[Prediction]) -> Prediction:
    """Join predictions of consecutive row slices (all from one model)."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    probs = None
    if first.probabilities is not None:
        probs = np.concatenate([p.probabilities for p in parts if p.probabilities is not None])
    outputs = None
    if first.outputs is not None:
        outputs = {
            k: np.concatenate([p.outputs[k] for p in parts if p.outputs is not None])
            for k in first.outputs
        }
    preds = np.concatenate([p.predictions for p in parts])
    return Prediction(preds, probs, first.classes, outputs)
