"""Training as a job: submitted to the real embedded job system, run by a worker thread, the
version registered in the registry of the job's settings; bad parameters refused at submit."""

from __future__ import annotations

from pathlib import Path

import pytest

from sibyl.errors import InvalidInputError
from sibyl.jobs import JobRequest, JobState, LocalModels, load_kinds
from sibyl.registry import ModelRegistry
from tests.jobs_support import finished, job_system
from tests.unit.training.conftest import Mlflow, new_name


def test_a_train_job_registers_a_staging_version(
    tmp_path: Path, csv_path: Path, mlflow_target: Mlflow
) -> None:
    load_kinds(["sibyl.training.jobs"])
    system = job_system(
        tmp_path / "sibyl", {"registry": {"tracking_uri": mlflow_target.uri}}
    )
    try:
        system.start_workers(LocalModels(system.settings), 1)
        name = new_name("job")
        params = {"data": str(csv_path), "target": "y", "name": name, "estimator": "linear"}
        job = system.service.submit(JobRequest("train", params))
        done = finished(system, job.id, timeout=180)
        assert done.state is JobState.SUCCEEDED, done.error
        assert done.result is not None and done.progress == 1.0
        versions = ModelRegistry(mlflow_target.uri).list_versions(name)
        assert [v.version for v in versions] == ["1"]
        with pytest.raises(InvalidInputError) as bad:
            system.service.submit(JobRequest("train", {"data": "x.csv", "target": "y"}))
        assert bad.value.field is not None and "name" in bad.value.field
    finally:
        system.stop()
