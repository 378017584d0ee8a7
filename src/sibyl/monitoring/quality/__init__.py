"""Live quality of served models from delayed ground truth.

Feedback (``POST /v1/feedback``) is joined to the prediction log in the store
(:meth:`sibyl.store.Store.labelled_predictions`); this package explodes the joined rows into
one labelled row per predicted row and computes, per version, over a window of *prediction*
time: accuracy, precision / recall / F1, ROC AUC and log loss for classifiers, MAE and RMSE for
regressors, labelled rows and label coverage (:func:`build_reports`). The maths is numpy, checked
against ``sklearn.metrics`` (see ``_metrics.py`` for every definition).
"""

from sibyl.monitoring.quality._join import CLASSIFIER, REGRESSOR, LabelledRow, explode
from sibyl.monitoring.quality._metrics import (
    CLASSIFIER_KEYS,
    REGRESSOR_KEYS,
    class_key,
    classification_metrics,
    log_loss,
    regression_metrics,
    roc_auc,
)
from sibyl.monitoring.quality._report import (
    CURRENT_KEYS,
    QualityReport,
    build_reports,
    empty_report,
    hourly_metrics,
)

__all__ = [
    "CLASSIFIER",
    "CLASSIFIER_KEYS",
    "CURRENT_KEYS",
    "REGRESSOR",
    "REGRESSOR_KEYS",
    "LabelledRow",
    "QualityReport",
    "build_reports",
    "class_key",
    "classification_metrics",
    "empty_report",
    "explode",
    "hourly_metrics",
    "log_loss",
    "regression_metrics",
    "roc_auc",
]
