"""Job kinds: what a job of each kind runs, with which parameters.

A kind is registered once per process with :func:`register_job_kind` and found by name when a
job is submitted (its parameters are validated there, so bad input is a 400 at submit time) and
when a worker runs it. A plain function becomes a job::

    class TrainParams(BaseModel):
        dataset: str
        target: str

    def train(ctx: JobContext, params: TrainParams) -> dict[str, Any]:
        ctx.progress(0.1, "loading data")
        ctx.check_cancelled()              # raises JobCancelled when cancel was asked
        ...
        return {"version": "7"}            # the job's result (JSON)

    register_job_kind("train", train, TrainParams, description="Train and register a model")

**Contract of ``run(ctx, params)``**: called in a worker thread (or process) with the validated
parameters; returns the job's result (a JSON-able mapping, or ``None``) or a :class:`FanOut`
that splits the job into chunks run in parallel by every worker (``chunk`` then runs per chunk
and ``finish`` once after the last). Raise :class:`~sibyl.errors.InvalidInputError`,
``NotFoundError`` or ``ConflictError`` for failures that another attempt cannot fix (the job
fails at once); any other exception is retried up to ``max_attempts`` with exponential backoff.
``run`` must be idempotent over attempts (an attempt may be cut short by a killed worker).

Built-in kinds live in the modules of :data:`BUILTIN_MODULES`; each exposes
``register_kinds() -> None`` and is loaded by :func:`load_kinds` in every process that submits or
runs jobs (``jobs.modules`` adds your own).
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog
from pydantic import BaseModel, ValidationError

from sibyl.errors import InvalidInputError

if TYPE_CHECKING:
    from sibyl.jobs._context import ChunkContext, JobContext, SubmitContext

log = structlog.get_logger(__name__)
BUILTIN_MODULES = ("sibyl.jobs.batch", "sibyl.training.jobs")
"""Modules whose ``register_kinds()`` registers sibyl's own kinds (missing ones are skipped)."""


@dataclass(frozen=True, slots=True)
class FanOut:
    """What ``run`` returns to split its job into chunks.

    ``chunks``: one JSON spec per chunk (e.g. a byte range of the input); ``plan``: JSON shared
    by every chunk (e.g. the resolved model version). Each chunk is claimed, leased and retried
    on its own; the job succeeds once every chunk is done and ``finish`` returned its result.
    """

    chunks: Sequence[Mapping[str, Any]]
    plan: Mapping[str, Any] = field(default_factory=dict)


RunFn = Callable[["JobContext", Any], "Mapping[str, Any] | FanOut | None"]
ChunkFn = Callable[["ChunkContext", Any, Mapping[str, Any], Mapping[str, Any]], Mapping[str, Any]]
"""``chunk(ctx, params, plan, spec) -> chunk result``: runs one chunk; must be idempotent (a
chunk whose worker died runs again elsewhere)."""
FinishFn = Callable[["JobContext", Any, Mapping[str, Any], list[dict[str, Any]]], Mapping[str, Any]]
"""``finish(ctx, params, plan, chunk_results) -> job result``: after the last chunk (results by
chunk index); may run twice when workers race, so it must be idempotent."""
ValidateFn = Callable[[Any, "SubmitContext"], None]
"""``validate(params, ctx)``: checks at submit time that need the outside world (the model
exists, the input file exists); raises ``InvalidInputError`` naming the parameter."""


@dataclass(frozen=True, slots=True)
class JobKind:
    """A registered kind (see the module docstring)."""

    name: str
    run: RunFn
    params: type[BaseModel]
    description: str = ""
    chunk: ChunkFn | None = None
    finish: FinishFn | None = None
    validate: ValidateFn | None = None

    def parse(self, params: Mapping[str, Any] | None, prefix: str = "params") -> BaseModel:
        """``params`` validated by the kind's model; ``InvalidInputError`` naming the field
        (``params.<field>``) and what was expected."""
        try:
            return self.params.model_validate(dict(params or {}))
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err.get("loc", ()))
            where = f"{prefix}.{loc}" if loc and prefix else (loc or prefix or "params")
            raise InvalidInputError(
                f"'{where}': {err.get('msg')} (job kind '{self.name}'; its parameters are "
                "listed by GET /v1/jobs/kinds)",
                field=where,
            ) from None

    def describe(self) -> dict[str, Any]:
        """Name, description and the JSON schema of the parameters (for ``/v1/jobs/kinds``)."""
        return {
            "name": self.name,
            "description": self.description,
            "chunked": self.chunk is not None,
            "params": self.params.model_json_schema(),
        }


_KINDS: dict[str, JobKind] = {}
_LOCK = threading.Lock()
_LOADED: set[str] = set()


def register_job_kind(
    name: str,
    run: RunFn,
    params: type[BaseModel],
    *,
    description: str = "",
    chunk: ChunkFn | None = None,
    finish: FinishFn | None = None,
    validate: ValidateFn | None = None,
) -> JobKind:
    """Register (or replace) the kind ``name``; returns it. ``chunk`` is required when ``run``
    may return a :class:`FanOut`. Thread-safe; call it from a module's ``register_kinds()``."""
    if not name or len(name) > 100 or not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"job kind name {name!r}: use 1-100 letters, digits, '_' or '-'")
    if finish is not None and chunk is None:
        raise ValueError(f"job kind {name!r}: finish needs chunk")
    kind = JobKind(name, run, params, description, chunk, finish, validate)
    with _LOCK:
        _KINDS[name] = kind
    return kind


def get_job_kind(name: str, field: str = "kind") -> JobKind:
    """The registered kind ``name``; ``InvalidInputError`` naming the registered ones."""
    kind = _KINDS.get(name)
    if kind is None:
        known = ", ".join(sorted(_KINDS)) or "none"
        raise InvalidInputError(
            f"'{field}': unknown job kind {name!r}; registered kinds: {known}", field=field
        )
    return kind


def job_kinds() -> list[JobKind]:
    """Every registered kind, by name."""
    return [_KINDS[n] for n in sorted(_KINDS)]


def load_kinds(extra: Iterable[str] = ()) -> list[str]:
    """Call ``register_kinds()`` of each built-in module that exists (one that cannot be
    imported is skipped with a warning) and of each module in ``extra`` (which must load:
    ``InvalidInputError`` otherwise); once per module and process. Returns the modules
    loaded."""
    loaded = []
    for module in (*BUILTIN_MODULES, *extra):
        if module in _LOADED:
            continue
        if module in BUILTIN_MODULES and importlib.util.find_spec(module) is None:
            continue
        try:
            register = importlib.import_module(module).register_kinds
        except (ImportError, AttributeError) as exc:
            if module in BUILTIN_MODULES:  # e.g. an optional dependency of training is missing
                log.warning("job_kinds_unavailable", module=module, error=repr(exc))
                continue
            raise InvalidInputError(
                f"job kind module {module!r} cannot be loaded ({exc}); it must be importable "
                "and define register_kinds()",
                field="jobs.modules",
            ) from exc
        register()
        with _LOCK:
            _LOADED.add(module)
        loaded.append(module)
    return loaded
