"""Transport-agnostic application layer; ``container.build_container`` wires it."""

from sibyl.service._experiments import ExperimentService, FeedbackItem, NewExperiment
from sibyl.service._manager import ModelManager
from sibyl.service._outcomes import AssignmentRecord, OutcomeWriter
from sibyl.service._predict import (
    Inputs,
    PredictionService,
    PredictRequest,
    PredictResult,
    status_of,
)
from sibyl.service._router import Route, RoutingSnapshot, RunningExperiment, build_snapshot, route
from sibyl.service._served import ServedVersion
from sibyl.service.container import Container, build_container

__all__ = [
    "AssignmentRecord",
    "Container",
    "ExperimentService",
    "FeedbackItem",
    "Inputs",
    "ModelManager",
    "NewExperiment",
    "OutcomeWriter",
    "PredictRequest",
    "PredictResult",
    "PredictionService",
    "Route",
    "RoutingSnapshot",
    "RunningExperiment",
    "ServedVersion",
    "build_container",
    "build_snapshot",
    "route",
    "status_of",
]
