"""One settings tree for the whole of sibyl.

Read once at the edge (``sibyl.cli`` and ``sibyl.api.create_app``) and passed down; nothing below
reads ``os.environ``. Sources, highest priority first: keyword arguments, ``SIBYL_*`` environment
variables (nested with ``__``, e.g. ``SIBYL_BATCHING__MAX_BATCH_SIZE=64``), the TOML file named by
``SIBYL_CONFIG`` or ``./sibyl.toml``, then the embedded defaults below (everything under
``./.sibyl/``). ``MLFLOW_TRACKING_URI`` is honoured when ``registry.tracking_uri`` is not set, as
every MLflow tool does.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from sibyl.errors import SibylError
from sibyl.monitoring.alerts._durations import parse_duration
from sibyl.monitoring.alerts._settings import AlertSettings


class ServerSettings(BaseModel):
    """HTTP server."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    host: str = "127.0.0.1"
    """Interface to bind."""
    port: int = 8000
    """TCP port to listen on."""
    max_body_bytes: int = 8 * 1024 * 1024
    """Largest accepted request body; bigger bodies get 413."""
    default_timeout_ms: float = 5000.0
    """Deadline of a prediction request when it names none (OIP ``parameters.timeout`` in µs or the
    ``X-Request-Timeout-Ms`` header override it); past it the answer is 504."""
    default_model: str | None = None
    """Model served at MLflow's ``POST /invocations`` (the only registered model when unset)."""
    access_log: bool = False
    """Log every prediction request (off by default: it is on the hot path); errors are always
    logged."""
    fast_path: bool = True
    """Answer prediction routes from a raw-ASGI front (skips Starlette routing, ≈ 60 µs a request
    in PERFORMANCE-NOTES.md); off: the same handlers run behind FastAPI."""
    proxy_headers: bool = False
    """Let uvicorn rewrite the client address from ``X-Forwarded-*`` headers (a middleware on
    every request); sibyl itself never uses client addresses."""
    gc_freeze: bool = True
    """After start-up, move every object alive then out of the garbage collector's reach
    (``gc.freeze``), so full collections do not scan the libraries' heap while serving."""
    workers: int = 1
    """uvicorn worker processes for ``sibyl serve``."""


class RegistrySettings(BaseModel):
    """MLflow model registry."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    tracking_uri: str | None = None
    """MLflow tracking URI. Unset: ``$MLFLOW_TRACKING_URI``, else ``sqlite:///<data_dir>/mlflow.db``
    with artifacts under ``<data_dir>/mlartifacts``. Any MLflow URI works (``http://…`` server,
    ``postgresql://…``)."""
    registry_uri: str | None = None
    """MLflow registry URI when it differs from the tracking URI."""
    watch_interval_s: float = 2.0
    """How often the registry watcher polls aliases for changes made by anyone (0 disables)."""
    download_dir: str | None = None
    """Where model artifacts are downloaded; default ``<data_dir>/models``."""


class RuntimeSettings(BaseModel):
    """Loading and running models."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    onnx: bool = True
    """Compile sklearn / xgboost / lightgbm models to ONNX Runtime when they convert and verify."""
    onnx_atol: float = 1e-4
    """Absolute tolerance of the ONNX verification (outputs vs the native model)."""
    onnx_rtol: float = 1e-3
    """Relative tolerance of the ONNX verification."""
    onnx_verify_rows: int = 256
    """Rows (input example + generated sample) the ONNX outputs are checked on."""
    inference_threads: int = 1
    """Threads one model call may use (ONNX intra-op, OpenMP/BLAS via threadpoolctl)."""
    max_models: int = 16
    """Most model versions loaded at once; least recently used ones are evicted first."""
    memory_budget_mb: float = 4096.0
    """Memory budget of loaded models (measured RSS growth at load); LRU eviction above it."""
    preload: list[str] = Field(default_factory=list)
    """Models loaded and warmed at start, e.g. ``["churn", "dkt@staging", "iris:3"]``; ``/readyz``
    is true only when all are warm."""
    preload_all_production: bool = True
    """Also preload every model that has a production alias."""
    nan_policy: Literal["reject", "allow"] = "reject"
    """NaN / null in a required input column: ``reject`` → 400, ``allow`` → passed to the model.
    A version tag ``sibyl.nan_policy`` overrides it per model."""
    warmup_rows: int = 8
    """Rows of the input example run through a freshly loaded model before it serves."""


class BatchSettings(BaseModel):
    """Adaptive batching of one loaded version."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    max_batch_size: int = 64
    """Most rows in one model call."""
    max_wait_ms: float = 2.0
    """Longest the oldest queued request waits for a batch to fill (when ``eager`` is off)."""
    eager: bool = True
    """Dispatch at once when the model is idle and nothing else arrived in the same event-loop
    turn (low latency at low load; batches grow by themselves under load)."""
    max_queue_rows: int = 2048
    """Rows a priority lane may hold; beyond it requests get 429 with ``Retry-After``."""
    max_queue_delay_ms: float = 100.0
    """Shed (429) a request when the rows ahead of it in its lane would take longer than this to
    predict, estimated from the measured cost per row — a bound in time, whatever the model's
    speed."""
    max_concurrency: int = 64
    """Requests of one model version admitted at once (parsed, queued or running); more get 429
    before their body is parsed, so overload is shed cheaply and admitted requests stay fast."""


class StoreSettings(BaseModel):
    """sibyl's own records: experiments, assignments, feedback, prediction outcomes."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    url: str | None = None
    """Database of sibyl's records. Unset: ``sqlite:///<data_dir>/sibyl.db``; share one
    ``postgresql://user@host/db`` between replicas (``pip install 'sibyl[postgres]'``)."""
    flush_interval_s: float = 1.0
    """How often buffered prediction outcomes and assignments of experiments are written (also
    written as soon as ``flush_rows`` wait); they never delay a request."""
    flush_rows: int = 500
    """Buffered experiment records that trigger a write before the interval is up."""
    refresh_interval_s: float = 2.0
    """How often the running experiments are re-read, so replicas sharing a database agree on
    routing within this delay (changes made through this server apply at once)."""


class CacheSettings(BaseModel):
    """The prediction cache: per-row answers by model, resolved version and row digest."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    url: str | None = None
    """Where entries live. Unset: an in-process LRU + TTL (each replica its own);
    ``redis://[[user]:password@]host:port/db`` (``rediss://`` for TLS, extra ``sibyl[redis]``):
    shared by every replica; query parameters as in ``sibyl.cache.SUPPORTED`` (they win over
    ``ttl_s`` / ``max_entries``). When Redis is down, predictions are served uncached (counted in
    ``ml_cache_operations_total{result="unavailable"}``), never failed."""
    ttl_s: float = 300.0
    """How long a cached answer lives, in seconds (per model: ``cache_overrides``)."""
    max_entries: int = 10_000
    """Most rows the in-process cache holds; least recently used rows are evicted first (Redis
    evicts by its own ``maxmemory-policy``)."""
    enabled: bool = True
    """Cache predictions at all; ``false`` removes the cache from the serving path (per model:
    ``cache_overrides``)."""


class CachePolicySettings(BaseModel):
    """Caching of one model (an entry of ``cache_overrides``)."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    ttl_s: float | None = None
    """How long this model's cached answers live, in seconds (unset: ``cache.ttl_s``)."""
    enabled: bool = True
    """``false`` opts the model out: its predictions are never read from or written to the
    cache (models with side effects, or answers that must always be fresh)."""


class PromotionGateSettings(BaseModel):
    """What a version must show in a shadow period before it may become production (an entry of
    ``promotion_gates``; see docs/shadow.md). A shadow experiment of the model (running, paused
    or stopped) with the version as candidate must meet every criterion that is set."""

    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    require_shadow: bool = True
    """Refuse promotions to production (sibyl's API and CLI: 409) and roll back production alias
    moves made by anyone else (the registry watcher) without a passing shadow period."""
    min_requests: int = Field(default=500, ge=0)
    """Mirrored requests (answered or failed by the candidate; dropped ones do not count)."""
    min_agreement: float | None = Field(default=0.95, ge=0, le=1)
    """Share of compared rows on which the candidate agreed with the primary (same label for
    classifiers, ``|difference| ≤ tolerance`` for regressors); unset: not checked."""
    max_error_rate: float | None = Field(default=0.01, ge=0, le=1)
    """Share of mirrored requests the candidate failed (raised, timed out, refused the input);
    unset: not checked."""
    max_latency_increase: float | None = Field(default=None, ge=0)
    """Largest relative increase of the candidate's p95 latency over the primary's on the same
    requests (0.2 = at most 20 % slower); unset: not checked."""


class CircuitSettings(BaseModel):
    """Circuit breaker of every loaded model version (per model: ``breaker_overrides``). It
    watches the version's server-side failures (the model raised, a deadline passed) and slow
    calls; bad input (400) and shed requests (429) say nothing about the version and are not
    counted. See docs/fallback.md."""

    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    enabled: bool = True
    """Give every loaded version a circuit breaker; ``false``: versions are always called."""
    window_s: float = Field(default=30.0, gt=0)
    """Error and slow-call rates are measured over the last ``window_s`` seconds."""
    min_requests: int = Field(default=20, ge=1)
    """Requests the window must hold before the circuit can open (no verdict on 2 requests)."""
    max_error_rate: float = Field(default=0.5, ge=0, le=1)
    """Open when the share of failed requests (errors and timeouts) in the window is above
    this."""
    slow_call_ms: float | None = Field(default=None, gt=0)
    """A request the version takes longer than this to answer is *slow*; unset: latency is not
    watched. Also the longest a half-open probe may take to count as a success."""
    max_slow_rate: float = Field(default=0.5, ge=0, lt=1)
    """Open when the share of slow requests in the window is above this (0.05 means "the p95
    latency is above ``slow_call_ms``"); only with ``slow_call_ms`` set."""
    open_s: float = Field(default=30.0, ge=0)
    """How long an open circuit sends every request to the fallback chain (or answers 503 with
    ``Retry-After``) before it half-opens."""
    half_open_probes: int = Field(default=1, ge=1)
    """Requests let through to the version while half-open; all must succeed to close the
    circuit, the first failure re-opens it."""


FallbackReason = Literal["error", "timeout", "circuit_open"]
_REASONS: tuple[FallbackReason, ...] = ("error", "timeout", "circuit_open")


class DefaultAnswerSettings(BaseModel):
    """The constant answer ending a fallback chain, e.g. ``{"default": 0}`` or ``{"default":
    "stay", "probabilities": [0.9, 0.1], "classes": ["stay", "churn"]}``."""

    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    default: Any
    """Every row's prediction: a JSON value (number, string, list for multi-value rows, null)."""
    probabilities: list[float] | None = None
    """Every row's class probabilities (with ``classes``, same length); unset: none."""
    classes: list[Any] | None = None
    """The class labels ``probabilities`` are for."""


class FallbackSettings(BaseModel):
    """The fallback chain of one model (an entry of ``fallbacks``; see docs/fallback.md)."""

    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    chain: list[str | DefaultAnswerSettings] = Field(min_length=1)
    """Who answers, in order, when the requested version does not: ``"previous"`` (the version in
    production before the current one; for a request answered by any other version, the current
    production version), another model or version in ``runtime.preload`` syntax (``"rules"``,
    ``"rules@staging"``, ``"churn:3"``), and last, optionally, a constant ``{"default": value}``.
    Model members are loaded and warmed when the model's production version is."""
    on: list[FallbackReason] = Field(default_factory=lambda: list(_REASONS), min_length=1)
    """Failures of the requested version the chain answers: ``error`` (the model raised or
    failed to answer), ``timeout`` (no answer within ``timeout_ms`` or the request's deadline),
    ``circuit_open`` (its circuit breaker refuses calls). Others keep their error status."""
    timeout_ms: float | None = Field(default=None, gt=0)
    """Longest the requested version, and then each model member, may take before the next one
    is asked (always within the request's own deadline); unset: the request's deadline."""


class CanarySettings(BaseModel):
    """Canary rollouts (see docs/canary.md): how often running canaries are judged and moved."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    interval_s: float = Field(default=5.0, ge=0)
    """How often this replica judges every running canary (steps, promotion, rollback; replicas
    sharing a database never take a step twice); 0: this replica never moves canaries."""


class DriftSettings(BaseModel):
    """Drift of inputs and outputs on the serving path, and the label-free accuracy estimate
    (see docs/monitoring.md, "Drift in the server")."""

    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    enabled: bool = True
    """Watch every served version that has a reference profile (and estimate the accuracy of
    every classifier, CBPE); ``false``: nothing on the serving path."""
    window_rows: int = Field(default=2000, ge=10)
    """Rows in the sliding window each version's live data is judged on."""
    min_rows: int = Field(default=1000, ge=1)
    """Rows the window must hold before drift (and the accuracy estimate) is judged."""
    observe_every: int = Field(default=1, ge=1)
    """Fold every k-th model batch into the window (1: every batch); sampling lowers the cost
    per prediction and fills the window more slowly."""
    report_interval_s: float = Field(default=30.0, gt=0)
    """How often reports are computed for ``ml_drift_score`` and
    ``ml_model_estimated_accuracy`` (and read by alert rules)."""


class PredictionLogSettings(BaseModel):
    """The prediction log: one row per prediction request in the store (see docs/monitoring.md,
    "Prediction log"). Written by a background writer that never delays or fails a request;
    while the store is down rows wait in an append-only spool file and are replayed, each once,
    when it answers again."""

    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    enabled: bool = True
    """Log every prediction request (answered or failed); ``false``: nothing on the path."""
    inputs: Literal["all", "sample", "none"] = "sample"
    """Which requests keep their inputs: ``all``, a random ``sample`` (``sample_rate``) or
    ``none``. Inputs are most of a row's bytes and the most sensitive part; a sample is enough
    for replays and offline analysis (drift is computed live on every request anyway)."""
    sample_rate: float = Field(default=0.1, ge=0, le=1)
    """Share of requests whose inputs are kept when ``inputs`` is ``sample``."""
    redact: list[str] = Field(default_factory=list)
    """Input fields whose values are logged as ``null`` (names, case-insensitive), e.g.
    ``["email", "ssn"]``."""
    redact_pattern: str | None = None
    """Also redact every field whose whole name matches this regular expression
    (case-insensitive), e.g. ``"(.*_)?(email|phone|name)"``."""
    outputs: bool = True
    """Log what was answered (predictions, probabilities, classes); live quality joins feedback
    to them."""
    flush_interval_s: float = Field(default=1.0, gt=0)
    """How often buffered rows are written (also as soon as ``flush_rows`` wait)."""
    flush_rows: int = Field(default=1000, ge=1)
    """Rows per write transaction; that many buffered rows trigger a write early."""
    max_pending: int = Field(default=100_000, ge=1)
    """Rows buffered in memory before the writer takes them; beyond it new rows are dropped and
    counted (``ml_prediction_log_rows_total{result="dropped"}``). Only reached when the writer
    thread itself falls behind: a slow or down store never holds rows in memory (they spool)."""
    spool_dir: Path | None = None
    """Where rows wait while the store is down (append-only files, one directory per process,
    adopted by the next process when one dies); default ``<data_dir>/spool/predictions``."""
    spool_max_mb: float = Field(default=1024.0, gt=0)
    """Most disk the spool may use; rows beyond it are dropped and counted."""
    retry_max_s: float = Field(default=30.0, gt=0)
    """Longest wait between two attempts to reach a down store (backoff from 0.5 s)."""
    retention_max_age_days: float | None = Field(default=30.0, gt=0)
    """Rows older than this are deleted; unset: kept whatever their age."""
    retention_max_rows: int | None = Field(default=1_000_000, ge=0)
    """Most rows kept per model (the newest); unset: no limit."""
    retention_interval_s: float = Field(default=3600.0, ge=0)
    """How often retention runs (each replica; deleting is idempotent); 0: never."""


class QualitySettings(BaseModel):
    """Live quality from delayed ground truth: feedback joined to the prediction log (see
    docs/monitoring.md, "Feedback and live quality")."""

    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    enabled: bool = True
    """Refresh the quality gauges (``ml_model_accuracy`` and friends) periodically; ``false``:
    no background work (the quality API still answers on demand)."""
    interval_s: float = Field(default=60.0, gt=0)
    """How often every served model's quality is recomputed for each of ``windows``."""
    windows: list[str] = Field(default_factory=lambda: ["1h", "24h", "7d"], min_length=1)
    """Sliding windows of *prediction* time the gauges are computed over (the ``window``
    label), as durations: ``"30m"``, ``"1h"``, ``"7d"``."""
    max_rows: int = Field(default=200_000, ge=1)
    """Most feedback rows one window reads (the newest); beyond it the report says
    ``truncated``."""

    @field_validator("windows")
    @classmethod
    def _durations(cls, windows: list[str]) -> list[str]:
        for window in windows:
            try:
                seconds = parse_duration(window, field="quality.windows")
            except SibylError as exc:
                raise ValueError(exc.message) from None
            if seconds <= 0:
                raise ValueError(f"window {window!r} must be longer than 0s")
        return windows


class DashboardSettings(BaseModel):
    """The per-model dashboard (``GET /v1/monitoring/models/{name}/dashboard``): its window and
    the rules of its health status (see docs/monitoring.md, "Dashboard")."""

    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    window: str = "1h"
    """Window of the statistics and the health status unless the request names one."""
    failing_success_rate: float = Field(default=0.95, ge=0, le=1)
    """Health is ``failing`` when the success rate over the window is below this."""
    degraded_success_rate: float = Field(default=0.99, ge=0, le=1)
    """Health is at least ``degraded`` when the success rate is below this."""
    degraded_p95_latency_ms: float = Field(default=100.0, gt=0)
    """Health is at least ``degraded`` when the p95 latency is above this."""
    failing_p95_latency_ms: float = Field(default=1000.0, gt=0)
    """Health is ``failing`` when the p95 latency is above this."""
    latency_sample: int = Field(default=10_000, ge=100)
    """Latencies read to compute a p95 in Python when the store cannot do it in SQL (SQLite;
    PostgreSQL uses ``percentile_cont``)."""


class JobsSettings(BaseModel):
    """Background jobs — batch scoring, training, tuning (see docs/jobs.md)."""

    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    url: str | None = None
    """Job queue. Unset: SQLite at ``<data_dir>/jobs.db`` (``sibyl serve`` and ``sibyl worker``
    processes on one machine); ``redis://host:6379/0`` (extra ``sibyl[redis]``) or
    ``postgresql://…`` (``sibyl[postgres]``) for workers on many machines. Job records live in
    the store (``store.url``) either way."""
    name: str = "sibyl"
    """Queue name (Redis key / table prefix); deployments sharing one Redis need distinct
    names."""
    workers: int = Field(default=1, ge=0)
    """Job threads ``sibyl serve`` runs in-process (0: none, run ``sibyl worker`` processes).
    They run at lower OS priority and batch scoring uses the low-priority lane of the serving
    batchers, so jobs never starve online requests."""
    lease_s: float = Field(default=30.0, gt=0)
    """A running job or chunk whose worker stopped renewing its lease for this long (killed,
    frozen, cut off) is handed to another worker."""
    heartbeat_s: float = Field(default=2.0, gt=0)
    """How often workers renew their leases and store progress (keep it well below
    ``lease_s``)."""
    max_attempts: int = Field(default=3, ge=1)
    """Attempts of a job, and of each chunk of a batch job, unless its submission says
    otherwise."""
    retry_delay_s: float = Field(default=5.0, ge=0)
    """Wait before the first retry of a failed attempt; doubled for each further one."""
    stale_s: float = Field(default=900.0, gt=0)
    """A job still queued (or a chunk still pending) this long after its queue message was
    sent gets a new message (a worker may have died between taking the message and claiming
    the job; duplicates are harmless)."""
    poll_s: float = Field(default=1.0, gt=0)
    """Longest an idle worker waits between looks at the SQLite queue (Redis and PostgreSQL
    wake workers at once)."""
    nice: int = Field(default=10, ge=0, le=19)
    """OS niceness of job threads and ``sibyl worker`` processes, so the OS favours serving."""
    chunk_rows: int = Field(default=100_000, ge=1)
    """Batch scoring: input rows per chunk; chunks run in parallel on every worker."""
    read_rows: int = Field(default=10_000, ge=1)
    """Batch scoring: rows read, scored and written at a time within a chunk (bounds memory
    whatever the input size)."""
    s3_endpoint_url: str | None = None
    """S3-compatible endpoint for ``s3://`` inputs and outputs (MinIO, …); unset: AWS.
    Credentials come from the AWS SDK's usual chain (environment, profile, instance role)."""
    modules: list[str] = Field(default_factory=list)
    """Extra modules defining job kinds: each one's ``register_kinds()`` is called in every
    process that submits or runs jobs (sibyl's own kinds are always there)."""


class LoggingSettings(BaseModel):
    """Structured logs."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    level: str = "INFO"
    """Log level."""
    json_logs: bool = True
    """JSON lines (``False``: human-readable console output)."""


class Settings(BaseSettings):
    """Root of sibyl's settings."""

    model_config = SettingsConfigDict(
        env_prefix="SIBYL_",
        env_nested_delimiter="__",
        extra="ignore",
        toml_file="sibyl.toml",
        use_attribute_docstrings=True,
    )

    data_dir: Path = Path(".sibyl")
    """Home of the embedded defaults (MLflow SQLite registry, artifacts, downloads)."""
    datasets_dir: Path | None = None
    """Cache of the real datasets the zoo checks on, filled at set-up time by ``make datasets``
    (``scripts/fetch-datasets.sh``; sibyl never downloads at run time); default
    ``<data_dir>/datasets``."""
    server: ServerSettings = Field(default_factory=ServerSettings)
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)
    batching: BatchSettings = Field(default_factory=BatchSettings)
    batching_overrides: dict[str, BatchSettings] = Field(default_factory=dict)
    """Per-model batching, e.g. ``SIBYL_BATCHING_OVERRIDES='{"churn": {"max_batch_size": 8}}'``."""
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    cache_overrides: dict[str, CachePolicySettings] = Field(default_factory=dict)
    """Per-model caching, e.g. ``SIBYL_CACHE_OVERRIDES='{"churn": {"ttl_s": 30}, "dice":
    {"enabled": false}}'``; models not named use ``cache.ttl_s`` and are cached."""
    breaker: CircuitSettings = Field(default_factory=CircuitSettings)
    breaker_overrides: dict[str, CircuitSettings] = Field(default_factory=dict)
    """Per-model circuit breakers, e.g. ``SIBYL_BREAKER_OVERRIDES='{"churn": {"min_requests": 50,
    "slow_call_ms": 200}}'`` (an override replaces ``breaker`` whole for that model)."""
    fallbacks: dict[str, FallbackSettings] = Field(default_factory=dict)
    """Per-model fallback chains, e.g. ``SIBYL_FALLBACKS='{"churn": {"chain": ["previous",
    "churn-rules", {"default": 0}], "on": ["error", "timeout", "circuit_open"], "timeout_ms":
    300}}'``; models not named have none (an error stays an error)."""
    store: StoreSettings = Field(default_factory=StoreSettings)
    prediction_log: PredictionLogSettings = Field(default_factory=PredictionLogSettings)
    quality: QualitySettings = Field(default_factory=QualitySettings)
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)
    canary: CanarySettings = Field(default_factory=CanarySettings)
    drift: DriftSettings = Field(default_factory=DriftSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    """Alert rules, their evaluation and notification channels (see docs/alerts.md)."""
    jobs: JobsSettings = Field(default_factory=JobsSettings)
    """Background jobs: queue, in-process workers, leases, retries, batch scoring."""
    promotion_gates: dict[str, PromotionGateSettings] = Field(default_factory=dict)
    """Per-model promotion gates requiring a passing shadow period, e.g.
    ``SIBYL_PROMOTION_GATES='{"churn": {"min_requests": 500, "min_agreement": 0.95,
    "max_error_rate": 0.01, "max_latency_increase": 0.2}}'``; models not named are not gated."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = os.environ.get("SIBYL_CONFIG", "sibyl.toml")
        toml = TomlConfigSettingsSource(settings_cls, toml_file=toml_file)
        return (init_settings, env_settings, toml)

    def tracking_uri(self) -> str:
        """The MLflow tracking URI in force (see ``registry.tracking_uri``)."""
        if self.registry.tracking_uri:
            return self.registry.tracking_uri
        env = os.environ.get("MLFLOW_TRACKING_URI")
        if env:
            return env
        return f"sqlite:///{self.data_dir.resolve() / 'mlflow.db'}"

    def artifact_root(self) -> str:
        """Artifact location for experiments created by sibyl on the embedded default."""
        return (self.data_dir.resolve() / "mlartifacts").as_uri()

    def datasets_path(self) -> Path:
        """Where the zoo looks for cached real datasets (see ``datasets_dir``)."""
        return self.datasets_dir or self.data_dir / "datasets"

    def download_dir(self) -> Path:
        """Local cache of downloaded model artifacts."""
        return Path(self.registry.download_dir or self.data_dir / "models")

    def batching_for(self, model: str) -> BatchSettings:
        """Batching settings of one model (its override, else the defaults)."""
        return self.batching_overrides.get(model, self.batching)

    def breaker_for(self, model: str) -> CircuitSettings:
        """Circuit breaker settings of one model (its override, else the defaults)."""
        return self.breaker_overrides.get(model, self.breaker)


def load_settings(**overrides: Any) -> Settings:
    """Read the settings once (environment, TOML, defaults) with ``overrides`` on top."""
    return Settings(**overrides)


def describe_settings(settings: Settings | None = None) -> list[tuple[str, str, str, str]]:
    """Every setting as ``(environment variable, type, current value, documentation)``."""
    settings = settings or Settings()
    rows: list[tuple[str, str, str, str]] = []
    _describe(settings, "SIBYL_", rows)
    return rows


def _describe(model: BaseModel, prefix: str, rows: list[tuple[str, str, str, str]]) -> None:
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        env = f"{prefix}{name.upper()}"
        if isinstance(value, BaseModel):
            _describe(value, env + "__", rows)
            continue
        kind = getattr(info.annotation, "__name__", None) or str(info.annotation)
        doc = " ".join((info.description or "").split())
        rows.append((env, kind.replace("typing.", ""), repr(value), doc))
