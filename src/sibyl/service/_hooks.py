"""``ServingHook``: how a feature joins every served version without patching the manager.

The :class:`~sibyl.service.ModelManager` calls each hook registered with
``manager.add_serving_hook(hook)`` at three moments of a version's life:

1. ``prepare(loaded)`` — in the model loader thread, right after the model is loaded and
   warm, before it serves. It may block (read the registry, download an artifact); an exception
   is logged and ignored (the version serves without the hook's feature).
2. ``wrap(loaded, predictor)`` — on the event loop, when the version's batcher is built: the
   hook returns the predictor the batcher calls — ``predictor`` itself, or a wrapper around it
   (CONVENTIONS §4: wrap, don't patch). The wrapper is called from the batcher's worker thread,
   one batch at a time, and must keep the :class:`~sibyl.runtime.types.Predictor` contract
   (one output row per input row; its own failures must never fail the prediction).
   Cheap, must not raise. Also called without ``prepare`` for models served from memory
   (``ModelManager.add_loaded``).
3. ``release(name, version)`` — on the event loop, when the version leaves the pool (unloaded
   or evicted): drop what ``prepare``/``wrap`` kept for it. Cheap, must not raise.
"""

from __future__ import annotations

from typing import Protocol

from sibyl.runtime.loader import LoadedModel
from sibyl.runtime.types import Predictor


class ServingHook(Protocol):
    """A feature that follows every served version (see the module docstring)."""

    def prepare(self, loaded: LoadedModel) -> None:
        """Loader thread, before serving; may block."""
        ...

    def wrap(self, loaded: LoadedModel, predictor: Predictor) -> Predictor:
        """Event loop: the predictor the version's batcher calls."""
        ...

    def release(self, name: str, version: str) -> None:
        """Event loop: the version left the pool."""
        ...


__all__ = ["ServingHook"]
