"""Transport-agnostic application layer; ``container.build_container`` wires it."""

from sibyl.service._manager import ModelManager
from sibyl.service._predict import (
    Inputs,
    PredictionService,
    PredictRequest,
    PredictResult,
    status_of,
)
from sibyl.service._served import ServedVersion
from sibyl.service.container import Container, build_container

__all__ = [
    "Container",
    "Inputs",
    "ModelManager",
    "PredictRequest",
    "PredictResult",
    "PredictionService",
    "ServedVersion",
    "build_container",
    "status_of",
]
