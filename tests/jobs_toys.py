"""Toy job kinds for the job system's tests (real functions, run by real workers).

Loaded by in-process tests directly and by ``sibyl worker`` subprocesses through
``SIBYL_JOBS__MODULES='["tests.jobs_toys"]'``. Each kind leaves a trace in files the test
names, so a test can tell what ran, in which order and how often.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from sibyl.errors import InvalidInputError
from sibyl.jobs import ChunkContext, FanOut, JobContext, register_job_kind


class SleepyParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str = ""
    seconds: float = 0.0
    trace: str | None = None
    """File the label is appended to when the job starts (one line per run)."""


def sleepy(ctx: JobContext, p: SleepyParams) -> dict[str, Any]:
    if p.trace:
        with open(p.trace, "a") as fh:
            fh.write(f"{p.label}\n")
    ctx.progress(0.5, f"sleeping {p.seconds} s")
    ctx.sleep(p.seconds)
    return {"label": p.label, "pid": os.getpid()}


class FlakyParams(BaseModel):
    fail_times: int
    counter: str


def flaky(ctx: JobContext, p: FlakyParams) -> dict[str, Any]:
    path = Path(p.counter)
    n = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(n))
    if n <= p.fail_times:
        raise RuntimeError(f"flaky failure {n}")
    return {"attempt": ctx.attempt, "calls": n}


class BadParams(BaseModel):
    pass


def bad(ctx: JobContext, p: BadParams) -> None:
    raise InvalidInputError("'dataset': no such file", field="dataset")


class FanParams(BaseModel):
    chunks: int
    seconds: float = 0.0
    trace: str | None = None


def fan(ctx: JobContext, p: FanParams) -> FanOut:
    return FanOut([{"i": i} for i in range(p.chunks)], {"factor": 10})


def fan_chunk(
    ctx: ChunkContext, p: FanParams, plan: dict[str, Any], spec: dict[str, Any]
) -> dict[str, Any]:
    ctx.sleep(p.seconds)
    if p.trace:
        with open(p.trace, "a") as fh:
            fh.write(f"{spec['i']} {os.getpid()}\n")
    return {"value": spec["i"] * plan["factor"], "pid": os.getpid()}


def fan_finish(
    ctx: JobContext, p: FanParams, plan: dict[str, Any], results: list[dict[str, Any]]
) -> dict[str, Any]:
    return {"total": sum(r["value"] for r in results), "pids": sorted({r["pid"] for r in results})}


def register_kinds() -> None:
    register_job_kind("sleepy", sleepy, SleepyParams, description="sleeps, leaves a trace")
    register_job_kind("flaky", flaky, FlakyParams)
    register_job_kind("bad", bad, BadParams)
    register_job_kind("fan", fan, FanParams, chunk=fan_chunk, finish=fan_finish)
