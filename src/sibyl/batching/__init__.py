"""Adaptive batching: ``AdaptiveBatcher(predictor)`` turns a predictor into an async one."""

from sibyl.batching._adaptive import AdaptiveBatcher
from sibyl.batching._types import AsyncPredictor, BatchObserver, Priority

__all__ = ["AdaptiveBatcher", "AsyncPredictor", "BatchObserver", "Priority"]
