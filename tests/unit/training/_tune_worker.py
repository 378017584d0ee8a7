"""One tuning worker process: ``python -m tests.unit.training._tune_worker STORAGE STUDY
MLFLOW_URI N_TRIALS REGISTER`` joins (or creates) the study and prints its outcome as JSON."""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def main() -> None:
    import optuna

    from sibyl.training import tune
    from tests.unit.training.conftest import binary_frame

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage, study, uri, n_trials, register = sys.argv[1:6]
    outcome = tune(
        {"C": {"type": "loguniform", "low": 0.01, "high": 10.0}},
        tracking_uri=uri,
        name=f"{study}-model",
        data=binary_frame(300).drop(columns="city"),
        target="y",
        estimator="linear",
        storage=storage,
        study_name=study,
        n_trials=int(n_trials),
        folds=2,
        register=register == "1",
    )
    print(
        json.dumps(
            {
                "run_here": outcome.trials_run_here,
                "created": outcome.registered is not None,
                "states": outcome.states,
                "run": outcome.mlflow_run_id,
            }
        )
    )


if __name__ == "__main__":
    main()
