"""``sibyl jobs …`` on the real embedded store and queue (no server): submit, list, status,
cancel, results, watch and kinds."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from sibyl.cli._app import app
from sibyl.jobs import LocalModels
from tests.jobs_support import FAST, job_system

runner = CliRunner()


def _env(tmp: Path) -> dict[str, str]:
    env = {f"SIBYL_JOBS__{k.upper()}": str(v) for k, v in FAST.items()}
    return {**env, "SIBYL_DATA_DIR": str(tmp), "SIBYL_JOBS__MODULES": '["tests.jobs_toys"]',
            "SIBYL_LOGGING__JSON_LOGS": "false", "SIBYL_LOGGING__LEVEL": "ERROR"}


def test_submit_list_status_cancel_results(tmp_path: Path) -> None:
    env = _env(tmp_path)
    r = runner.invoke(app, ["jobs", "submit", "sleepy", "-p", "label=x", "-p", "seconds=0",
                            "--priority", "low"], env=env)
    assert r.exit_code == 0, r.output
    jid = r.stdout.strip().splitlines()[0]
    listed = runner.invoke(app, ["jobs", "list", "--state", "queued"], env=env)
    assert jid[:8] in listed.stdout
    status = json.loads(runner.invoke(app, ["jobs", "status", jid], env=env).stdout)
    assert status["state"] == "queued" and status["params"]["label"] == "x"
    assert status["priority"] == "low"
    assert runner.invoke(app, ["jobs", "cancel", jid], env=env).exit_code == 0
    results = runner.invoke(app, ["jobs", "results", jid], env=env)
    assert results.exit_code == 1 and "cancelled" in results.output
    bad = runner.invoke(app, ["jobs", "submit", "nope"], env=env)
    assert bad.exit_code == 1 and "unknown job kind" in bad.output
    bad = runner.invoke(app, ["jobs", "submit", "sleepy", "-p", "seconds=soon"], env=env)
    assert bad.exit_code == 1 and "params.seconds" in bad.output
    kinds = runner.invoke(app, ["jobs", "kinds"], env=env)
    assert "sleepy" in kinds.stdout and "batch_score" in kinds.stdout


def test_watch_follows_a_job_to_its_end(tmp_path: Path) -> None:
    env = _env(tmp_path)
    system = job_system(tmp_path)
    system.start_workers(LocalModels(system.settings), 1)
    try:
        r = runner.invoke(app, ["jobs", "submit", "sleepy", "-p", "label=w", "-p",
                                "seconds=0.3", "--watch"], env=env)
        assert r.exit_code == 0, r.output
        assert '"label": "w"' in r.stdout
        failed = runner.invoke(app, ["jobs", "submit", "bad", "--watch"], env=env)
        assert failed.exit_code == 1 and "no such file" in failed.output
    finally:
        system.stop()
