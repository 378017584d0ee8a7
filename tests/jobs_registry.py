"""Registers the job tests' models in a fresh MLflow registry, in its own process (MLflow's
tracking URI and active experiment are process globals other tests rely on)::

    python -m tests.jobs_registry <dir>     # prints the tracking URI

* ``scorer``: LogisticRegression on f0..f3 (1000 rows of make_classification, seed 1);
* ``slowecho``: the echo toy (row sum of a, b) sleeping 0.2 s per call.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

FEATURES = ["f0", "f1", "f2", "f3"]
N = 1000


def scorer_data() -> tuple[pd.DataFrame, LogisticRegression]:
    """The scorer's training data and model (deterministic: tests refit it to compare)."""
    x_arr, y = make_classification(n_samples=N, n_features=4, n_informative=3, n_redundant=0,
                                   random_state=1)
    x = pd.DataFrame(x_arr, columns=FEATURES)
    return x, LogisticRegression().fit(x, y)


def main(where: Path) -> str:
    from tests.helpers import log_pyfunc, log_sklearn, set_alias, setup_mlflow
    from tests.toys import EchoModel

    uri = setup_mlflow(where)
    x, model = scorer_data()
    set_alias("scorer", "production", log_sklearn(model, "scorer", x))
    ab = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    set_alias("slowecho", "production", log_pyfunc(EchoModel(delay=0.2), "slowecho", ab))
    return uri


if __name__ == "__main__":
    print(main(Path(sys.argv[1])))
