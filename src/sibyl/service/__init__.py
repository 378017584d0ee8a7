"""Transport-agnostic application layer; ``container.build_container`` wires it."""

from sibyl.service._bandits import BanditBook
from sibyl.service._canary import CanaryController, NewCanary
from sibyl.service._ensemble_book import EnsembleBook, NewEnsemble
from sibyl.service._ensemble_combine import MemberOutcome
from sibyl.service._ensembles import Ensemble
from sibyl.service._experiments import ExperimentService, FeedbackItem, NewExperiment
from sibyl.service._fallbacks import FallbackAnswer, Fallbacks
from sibyl.service._gate import GateVerdict, ShadowGate
from sibyl.service._manager import ModelManager
from sibyl.service._outcomes import AssignmentRecord, OutcomeWriter
from sibyl.service._predict import (
    Inputs,
    PredictionService,
    PredictRequest,
    PredictResult,
    status_of,
)
from sibyl.service._resilience import describe_circuit, reset_circuits
from sibyl.service._router import Route, RoutingSnapshot, RunningExperiment, build_snapshot, route
from sibyl.service._served import ServedVersion
from sibyl.service._shadow import ShadowService
from sibyl.service._shadow_config import ShadowConfig
from sibyl.service._shadow_writer import ShadowWriter
from sibyl.service.container import Container, build_container

__all__ = [
    "AssignmentRecord",
    "BanditBook",
    "CanaryController",
    "Container",
    "Ensemble",
    "EnsembleBook",
    "ExperimentService",
    "FallbackAnswer",
    "Fallbacks",
    "FeedbackItem",
    "GateVerdict",
    "Inputs",
    "MemberOutcome",
    "ModelManager",
    "NewCanary",
    "NewEnsemble",
    "NewExperiment",
    "OutcomeWriter",
    "PredictRequest",
    "PredictResult",
    "PredictionService",
    "Route",
    "RoutingSnapshot",
    "RunningExperiment",
    "ServedVersion",
    "ShadowConfig",
    "ShadowGate",
    "ShadowService",
    "ShadowWriter",
    "build_container",
    "build_snapshot",
    "describe_circuit",
    "reset_circuits",
    "route",
    "status_of",
]
