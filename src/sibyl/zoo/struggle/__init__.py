"""Learning-struggle predictor (USE-CASES.md §3): will a student struggle on a concept soon?

Examples come from the knowledge-tracing generator "Simulated-5" (:mod:`.features`: observable
per-concept practice features, exact labels from the generator's true ``P(correct)``). Two
models answer with the same columns — ``struggle_probability``, ``struggling``,
``interventions``, ``reasons``: the :class:`RuleModel` and the incremental, calibrated
:class:`StruggleModel` (logistic regression by SGD, ``partial_fit`` on feedback). :mod:`.train`
evaluates and registers them (``struggle``, ``struggle-rules``) plus the real-data check on
``Stat2Data/MathPlacement`` (``struggle-mathplacement``); ``update_from_feedback`` registers a
version that learnt from labelled feedback. Importing this package does not import MLflow.
"""

from sibyl.zoo.struggle.features import FEATURES, LABEL, check_features, examples, history_features
from sibyl.zoo.struggle.interventions import FEATURE_INTERVENTIONS, OUTPUTS, Intervention
from sibyl.zoo.struggle.metrics import expected_calibration_error, scores
from sibyl.zoo.struggle.model import StruggleModel
from sibyl.zoo.struggle.rules import RULES, Rule, RuleModel
from sibyl.zoo.struggle.train import (
    MODEL_NAME,
    RULES_NAME,
    StruggleTraining,
    evaluate,
    register_all,
    train,
    update_from_feedback,
)

__all__ = [
    "FEATURES",
    "FEATURE_INTERVENTIONS",
    "LABEL",
    "MODEL_NAME",
    "OUTPUTS",
    "RULES",
    "RULES_NAME",
    "Intervention",
    "Rule",
    "RuleModel",
    "StruggleModel",
    "StruggleTraining",
    "check_features",
    "evaluate",
    "examples",
    "expected_calibration_error",
    "history_features",
    "register_all",
    "scores",
    "train",
    "update_from_feedback",
]
