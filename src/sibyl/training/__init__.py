"""Training, tuning, AutoML and compression — plain, typed functions that report progress and
can be cancelled, so the job system runs them as jobs and the CLI calls them directly.

Every entry point takes ``progress(fraction, message)`` and ``should_stop()`` (see
:mod:`sibyl.training._control`; :class:`Cancelled` is raised at the next step boundary once
``should_stop()`` is True), MLflow coordinates (``tracking_uri``, ``artifact_location``) and
JSON-friendly parameters, and returns a frozen dataclass with ``to_dict()``:

* :func:`train_estimator` — a named sklearn / xgboost / lightgbm estimator on a CSV/Parquet:
  split, fit, evaluate, log, register (staging), optional holdout promotion gate;
* :func:`train_use_case` — a zoo use case's own trainer, staged, optionally gated;
* :func:`train_knowledge_tracing` — DKT (LSTM / Transformer) with early stopping and
  checkpoints that let a killed job resume;
* :func:`tune` — Optuna search (random, grid, TPE, CMA-ES, NSGA-II; pruners; multi-objective
  Pareto front), parallel in threads and across processes on an RDB storage;
  :func:`compare_studies` / :func:`list_studies`;
* :func:`automl` — model families × hyper-parameters within a wall-clock budget, leaderboard;
* :func:`compress_model` — tree pruning or int8 dynamic quantization, a new version.

Importing this package imports neither MLflow, Optuna nor torch.
"""

from sibyl.training._automl import AutoMLOutcome, LeaderboardRow, automl
from sibyl.training._compress import CompressionOutcome, CompressionReport, compress_model
from sibyl.training._control import (
    Cancelled,
    Progress,
    StopCheck,
    never_stop,
    no_progress,
)
from sibyl.training._data import Dataset, Split, Task, load_dataset, split_dataset
from sibyl.training._estimators import ESTIMATORS, installed_estimators, make_estimator
from sibyl.training._gate import GateDecision, holdout_gate
from sibyl.training._metrics import evaluate, higher_is_better
from sibyl.training._space import Param, SearchSpace, load_space, parse_space
from sibyl.training._storage import get_storage, storage_for_store
from sibyl.training._strategies import PRUNERS, STRATEGIES
from sibyl.training._torch import train_knowledge_tracing
from sibyl.training._train import (
    GateSpec,
    TrainingOutcome,
    publish_model,
    train_estimator,
    train_use_case,
)
from sibyl.training._tune import tune
from sibyl.training._tune_report import (
    StudySummary,
    TrialSummary,
    TuningOutcome,
    compare_studies,
    list_studies,
)

__all__ = [
    "ESTIMATORS",
    "PRUNERS",
    "STRATEGIES",
    "AutoMLOutcome",
    "Cancelled",
    "CompressionOutcome",
    "CompressionReport",
    "Dataset",
    "GateDecision",
    "GateSpec",
    "LeaderboardRow",
    "Param",
    "Progress",
    "SearchSpace",
    "Split",
    "StopCheck",
    "StudySummary",
    "Task",
    "TrainingOutcome",
    "TrialSummary",
    "TuningOutcome",
    "automl",
    "compare_studies",
    "compress_model",
    "evaluate",
    "get_storage",
    "higher_is_better",
    "holdout_gate",
    "installed_estimators",
    "list_studies",
    "load_dataset",
    "load_space",
    "make_estimator",
    "never_stop",
    "no_progress",
    "parse_space",
    "publish_model",
    "split_dataset",
    "storage_for_store",
    "train_estimator",
    "train_knowledge_tracing",
    "train_use_case",
    "tune",
]
