"""``sibyl jobs …`` (submit, batch, list, status, cancel, results, watch, kinds) and
``sibyl worker``.

The commands work on the job store and queue directly (the settings ``sibyl serve`` uses:
``store.url``, ``jobs.url``), so no server has to run to submit or inspect jobs::

    sibyl jobs batch churn data/users.parquet out/scores/ --watch
    sibyl jobs submit batch_score -p model=churn -p input=s3://b/in.csv -p output=s3://b/out/
    sibyl jobs list --state running
    sibyl worker --threads 2          # run jobs here (any machine sharing store and queue)
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Column, Table

from sibyl.cli._common import console, fail, out, settings_from
from sibyl.errors import SibylError

if TYPE_CHECKING:
    from sibyl.jobs import JobRecord, JobSystem

app = typer.Typer(no_args_is_help=True, help="Background jobs: batch scoring, training, tuning.")
PriorityOpt = Annotated[str, typer.Option(help="Queue priority: high, normal or low.")]
WatchOpt = Annotated[bool, typer.Option(help="Show progress until the job ends.")]


def _system() -> JobSystem:
    from sibyl.jobs import JobSystem
    from sibyl.store import get_store

    settings = settings_from()
    store = get_store(settings.store.url, data_dir=settings.data_dir)
    store.migrate()
    return JobSystem(settings, store)


def parse_param(text: str) -> tuple[str, Any]:
    """``KEY=VALUE``: VALUE read as JSON when it parses (numbers, true, lists), else text."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"-p {text!r}: write KEY=VALUE, e.g. -p model=churn")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


@app.command()
def submit(
    kind: Annotated[str, typer.Argument(help="Job kind (see `sibyl jobs kinds`).")],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="KEY=VALUE parameter; repeat.")
    ] = None,
    params: Annotated[str | None, typer.Option(help="Parameters as a JSON object.")] = None,
    priority: PriorityOpt = "normal",
    max_attempts: Annotated[int | None, typer.Option(help="Attempts (jobs.max_attempts).")] = None,
    watch: WatchOpt = False,
) -> None:
    """Queue a job of any kind."""
    from sibyl.jobs import JobRequest

    try:
        values: dict[str, Any] = json.loads(params) if params else {}
        values.update(parse_param(p) for p in param or [])
        system = _system()
        job = system.service.submit(JobRequest(kind, values, priority, max_attempts))
    except (SibylError, ValueError) as exc:
        raise fail(exc) from None
    _submitted(system, job, watch)


@app.command()
def batch(
    model: Annotated[str, typer.Argument(help="Registered model.")],
    input: Annotated[str, typer.Argument(help="Input file or directory (local or s3://).")],
    output: Annotated[str, typer.Argument(help="Output directory (local or s3://).")],
    version: Annotated[str | None, typer.Option(help="Version or alias (production).")] = None,
    input_format: Annotated[str | None, typer.Option(help="csv, parquet or jsonl.")] = None,
    output_format: Annotated[str, typer.Option(help="parquet or csv.")] = "parquet",
    passthrough: Annotated[
        list[str] | None, typer.Option(help="Input column copied to the output; repeat.")
    ] = None,
    priority: PriorityOpt = "normal",
    watch: WatchOpt = False,
) -> None:
    """Queue a batch scoring job (kind batch_score)."""
    from sibyl.jobs import JobRequest

    values: dict[str, Any] = {
        "model": model,
        "input": input,
        "output": output,
        "version": version,
        "input_format": input_format,
        "output_format": output_format,
        "passthrough": passthrough or [],
    }
    try:
        system = _system()
        job = system.service.submit(JobRequest("batch_score", values, priority), field_prefix="")
    except SibylError as exc:
        raise fail(exc) from None
    _submitted(system, job, watch)


def _submitted(system: JobSystem, job: JobRecord, watch: bool) -> None:
    out.print(job.id)
    console.print(f"queued {job.kind} job {job.id} ({job.priority.value} priority)")
    if watch:
        _watch(system, job.id, 0.5)


@app.command("list")
def list_jobs(
    state: Annotated[
        str | None, typer.Option(help="queued|running|succeeded|failed|cancelled")
    ] = None,
    kind: Annotated[str | None, typer.Option(help="Only this kind.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many (newest first).")] = 50,
) -> None:
    """Jobs with their state and progress."""
    try:
        jobs = _system().service.list_jobs(state=state, kind=kind, limit=limit)
    except SibylError as exc:
        raise fail(exc) from None
    table = Table(Column("id", no_wrap=True), "kind", "state", "priority", "progress",
                  "attempts", "created", "message")  # fmt: skip
    for j in jobs:
        table.add_row(
            j.id, j.kind, j.state.value, j.priority.value, f"{j.progress:.0%}",
            f"{j.attempts}/{j.max_attempts}", j.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            (j.error if j.state.value == "failed" else j.message) or "",
        )  # fmt: skip
    out.print(table)


@app.command()
def status(job_id: str) -> None:
    """One job: state, progress, attempts, error, result."""
    from sibyl.jobs import job_json

    try:
        job = _system().service.get(job_id)
    except SibylError as exc:
        raise fail(exc) from None
    out.print_json(json.dumps(job_json(job)))


@app.command()
def cancel(job_id: str) -> None:
    """Cancel a job (queued: never runs; running: stops at its next check)."""
    try:
        job = _system().service.cancel(job_id)
    except SibylError as exc:
        raise fail(exc) from None
    what = "cancelled" if job.state.value == "cancelled" else "asked to stop (running)"
    console.print(f"job {job.id} {what}")


@app.command()
def results(job_id: str) -> None:
    """The result of a succeeded job, as JSON."""
    try:
        result = _system().service.results(job_id)
    except SibylError as exc:
        raise fail(exc) from None
    out.print_json(json.dumps(result))


@app.command()
def watch(
    job_id: str,
    interval: Annotated[float, typer.Option(help="Seconds between looks.")] = 1.0,
) -> None:
    """Show a job's progress until it ends; exit code 1 unless it succeeded."""
    try:
        _watch(_system(), job_id, interval)
    except SibylError as exc:
        raise fail(exc) from None


def _watch(system: JobSystem, job_id: str, interval: float) -> None:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(),
               TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(job_id, total=1.0)
        while True:
            job = system.service.get(job_id)
            label = f"{job.kind} {job.id[:8]} {job.state.value}"
            detail = job.message or job.error or ""
            bar.update(task, completed=job.progress, description=f"{label} {detail}"[:80])
            if job.state.terminal:
                break
            time.sleep(interval)
    if job.state.value != "succeeded":
        console.print(f"[bold red]job {job.id} {job.state.value}:[/] {job.error or ''}")
        raise typer.Exit(code=1)
    out.print_json(json.dumps(job.result or {}))


@app.command()
def kinds() -> None:
    """Registered job kinds and their parameters."""
    from sibyl.jobs import JobService, load_kinds

    load_kinds(settings_from().jobs.modules)
    for kind in JobService.kinds():
        props = kind["params"].get("properties", {})
        required = set(kind["params"].get("required", []))
        names = ", ".join(f"{n}{'*' if n in required else ''}" for n in props)
        out.print(f"[bold]{kind['name']}[/]  {kind['description']}\n  params: {names}")


def worker(
    threads: Annotated[int, typer.Option(help="Job threads in this process.")] = 1,
    queue: Annotated[str | None, typer.Option(help="Queue URL (jobs.url).")] = None,
    name: Annotated[str | None, typer.Option(help="Queue name (jobs.name).")] = None,
) -> None:
    """Run jobs from the queue until SIGINT/SIGTERM (any number, on any machine sharing the
    store and the queue). Running jobs go back to the queue on shutdown."""
    from sibyl.jobs import JobSystem, LocalModels
    from sibyl.store import get_store

    settings = settings_from()
    if queue is not None:
        settings.jobs.url = queue
    if name is not None:
        settings.jobs.name = name
    try:
        store = get_store(settings.store.url, data_dir=settings.data_dir)
        store.migrate()
        system = JobSystem(settings, store)
        if settings.jobs.nice and hasattr(os, "nice"):
            os.nice(settings.jobs.nice)  # the whole process yields to serving on shared machines
        pool = system.start_workers(LocalModels(settings), threads, nice_threads=False)
    except SibylError as exc:
        raise fail(exc) from None
    console.print(f"sibyl worker: {threads} thread(s) on {system.queue.describe()}")
    if pool is not None:
        pool.run_forever()
    system.stop()
