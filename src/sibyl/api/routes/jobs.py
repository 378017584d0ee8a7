"""Jobs control plane (``/v1/jobs``) and the batch scoring shape (``/v1/batch``).

Thin: bodies are validated here, everything else is :class:`~sibyl.jobs.JobService` (blocking,
run in the thread pool). Bad input is a 400 naming the field (``kind``, ``priority``,
``params.<name>`` — for ``/v1/batch/submit`` the parameter itself: ``model``, ``input`` …), an
unknown job 404, results of an unfinished job 409.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from sibyl.api.routes._deps import blocking, container
from sibyl.errors import NotFoundError, NotReadyError
from sibyl.jobs import JobRequest, JobService, job_json
from sibyl.jobs.batch import KIND as BATCH_KIND
from sibyl.jobs.batch import BatchParams

router = APIRouter(tags=["jobs"])


class JobBody(BaseModel):
    """A job to run in the background."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(min_length=1, description="Registered kind (GET /v1/jobs/kinds).")
    params: dict[str, Any] = Field(default_factory=dict, description="The kind's parameters.")
    priority: str = Field("normal", description="high, normal or low (queue order).")
    max_attempts: int | None = Field(None, ge=1, le=100, description="Default jobs.max_attempts.")
    retry_delay_s: float | None = Field(None, ge=0, description="First retry delay (doubles).")


class BatchBody(BatchParams):
    """A batch scoring job: the ``batch_score`` parameters plus queue priority and attempts."""

    priority: str = Field("normal", description="high, normal or low (queue order).")
    max_attempts: int | None = Field(None, ge=1, le=100)


def _jobs(request: Request) -> JobService:
    system = container(request).jobs
    if system is None:
        raise NotReadyError("this server runs without the job system")
    return system.service


@router.get("/v1/jobs/kinds", summary="Job kinds and their parameters")
async def kinds(request: Request) -> dict[str, Any]:
    """Every registered kind with the JSON schema of its parameters."""
    return {"kinds": _jobs(request).kinds()}


@router.post("/v1/jobs", status_code=201, summary="Submit a job")
async def submit(body: JobBody, request: Request) -> dict[str, Any]:
    """Validate and queue a job; 400 names the bad field."""
    req = JobRequest(body.kind, body.params, body.priority, body.max_attempts, body.retry_delay_s)
    return job_json(await blocking(_jobs(request).submit, req))


@router.get("/v1/jobs", summary="List jobs")
async def list_jobs(
    request: Request,
    state: str | None = None,
    kind: str | None = None,
    limit: int = Query(100, ge=1, le=10_000),
) -> dict[str, Any]:
    """Jobs, newest first, optionally in one state / of one kind."""
    found = await blocking(_jobs(request).list_jobs, state=state, kind=kind, limit=limit)
    return {"jobs": [job_json(j) for j in found]}


@router.get("/v1/jobs/{job_id}", summary="A job's status and progress")
async def status(job_id: str, request: Request) -> dict[str, Any]:
    """State, progress, attempts, error and result of one job (404 when unknown)."""
    return job_json(await blocking(_jobs(request).get, job_id))


@router.get("/v1/jobs/{job_id}/results", summary="A succeeded job's result")
async def results(job_id: str, request: Request) -> dict[str, Any]:
    """The result of a succeeded job; 409 saying its state otherwise."""
    return {"id": job_id, "result": await blocking(_jobs(request).results, job_id)}


@router.get("/v1/jobs/{job_id}/chunks", summary="The chunks of a fanned-out job")
async def chunks(job_id: str, request: Request) -> dict[str, Any]:
    """Each chunk's state, attempts, worker and result."""
    found = await blocking(_jobs(request).chunks, job_id)
    return {
        "chunks": [
            {
                "idx": c.idx,
                "state": c.state.value,
                "attempts": c.attempts,
                "worker": c.worker,
                "result": c.result,
                "error": c.error,
            }
            for c in found
        ]
    }


@router.post("/v1/jobs/{job_id}/cancel", summary="Cancel a job")
async def cancel(job_id: str, request: Request) -> dict[str, Any]:
    """Queued: cancelled at once (never runs). Running: stops at its next check. 409 when it
    already finished."""
    return job_json(await blocking(_jobs(request).cancel, job_id))


# ---- the batch shape ------------------------------------------------------------------------


@router.post("/v1/batch/submit", status_code=201, summary="Submit a batch scoring job")
async def batch_submit(body: BatchBody, request: Request) -> dict[str, Any]:
    """A ``batch_score`` job: 400 names the bad field (``model``, ``input``, ``output`` …)."""
    params = body.model_dump(exclude={"priority", "max_attempts"})
    req = JobRequest(BATCH_KIND, params, body.priority, body.max_attempts)
    job = await blocking(_jobs(request).submit, req, field_prefix="")
    return {**job_json(job), "job_id": job.id}


@router.get("/v1/batch/{job_id}/status", summary="A batch job's status")
async def batch_status(job_id: str, request: Request) -> dict[str, Any]:
    """Same as ``GET /v1/jobs/{id}``."""
    return job_json(await blocking(_jobs(request).get, job_id))


@router.get("/v1/batch/{job_id}/results", summary="A batch job's output: summary and rows")
async def batch_results(
    job_id: str,
    request: Request,
    offset: int = Query(0, ge=0, description="First output row to return."),
    limit: int = Query(100, ge=0, le=10_000, description="Rows to return (0: summary only)."),
) -> dict[str, Any]:
    """Where the output is, how many rows, and a page of the scored rows (409 until the job
    succeeded)."""
    from sibyl.jobs.batch._results import read_page

    service = _jobs(request)
    job = await blocking(service.get, job_id)
    if job.kind != BATCH_KIND:
        raise NotFoundError(f"Job '{job_id}' is a {job.kind} job; use GET /v1/jobs/{job_id}")
    result = await blocking(service.results, job_id)
    endpoint = service.settings.jobs.s3_endpoint_url
    rows = await blocking(read_page, result, offset, limit, endpoint) if limit else []
    return {"id": job_id, "result": result, "offset": offset, "rows": rows}
