"""``sibyl.Client`` and ``sibyl.AsyncClient``: predict and model control over HTTP (httpx).

Both share one set of operations; the sync client returns results, the async one awaitables::

    from sibyl import Client
    with Client("http://127.0.0.1:8000") as c:
        out = c.predict("demo-classifier", records=[{"f0": 0.1, ...}])
        out["version"], out["predictions"], out.get("probabilities")
        c.promote("demo-classifier", 2)

Errors raise :class:`SibylHTTPError` with the status and the server's message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

R = TypeVar("R")
DEFAULT_URL = "http://127.0.0.1:8000"


class SibylHTTPError(Exception):
    """The server answered with an error status."""

    def __init__(self, status: int, message: str, body: Any) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.body = body


@dataclass(frozen=True, slots=True)
class _Call:
    method: str
    path: str
    json: Any = None
    params: Mapping[str, str] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    content: bytes | None = None


def _parse(response: httpx.Response) -> Any:
    body: Any
    try:
        body = response.json() if response.content.strip() else None
    except ValueError:
        body = response.text
    if response.status_code >= 400:
        message = body.get("error") or body.get("message") if isinstance(body, dict) else body
        raise SibylHTTPError(response.status_code, str(message or response.reason_phrase), body)
    return body


class _Operations(Generic[R]):
    """Every client operation, transport-free: subclasses implement ``_do``."""

    def _do(self, call: _Call) -> R:
        raise NotImplementedError

    def predict(
        self,
        model: str,
        *,
        records: Sequence[Mapping[str, Any]] | None = None,
        columns: Mapping[str, Sequence[Any]] | None = None,
        rows: Sequence[Sequence[Any]] | None = None,
        version: int | str | None = None,
        alias: str | None = None,
        priority: str | None = None,
        timeout_ms: float | None = None,
        request_id: str | None = None,
    ) -> R:
        """Native predict: give exactly one of ``records``, ``columns`` or ``rows``."""
        body: dict[str, Any] = {}
        fields: tuple[tuple[str, Any], ...] = (
            ("records", None if records is None else list(records)),
            ("columns", columns),
            ("rows", None if rows is None else list(rows)),
            ("version", version),
            ("alias", alias),
            ("priority", priority),
            ("timeout_ms", timeout_ms),
        )
        for key, value in fields:
            if value is not None:
                body[key] = value
        headers = {"x-request-id": request_id} if request_id else {}
        return self._do(_Call("POST", f"/v1/models/{model}/predict", body, headers=headers))

    def infer(
        self,
        model: str,
        inputs: Sequence[Mapping[str, Any]],
        *,
        version: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        outputs: Sequence[str] | None = None,
    ) -> R:
        """Open Inference Protocol V2 infer."""
        body: dict[str, Any] = {"inputs": list(inputs)}
        if parameters:
            body["parameters"] = dict(parameters)
        if outputs:
            body["outputs"] = [{"name": o} for o in outputs]
        path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"
        return self._do(_Call("POST", path, body))

    def invocations(self, payload: Mapping[str, Any], model: str | None = None) -> R:
        """MLflow scoring protocol (``/invocations`` of the default model, or of ``model``)."""
        path = f"/v1/models/{model}/invocations" if model else "/invocations"
        return self._do(_Call("POST", path, dict(payload)))

    def models(self) -> R:
        """Registered models and what is served."""
        return self._do(_Call("GET", "/v1/models"))

    def model(self, name: str) -> R:
        """One model's serving status (loaded versions, engines, last error)."""
        return self._do(_Call("GET", f"/v1/models/{name}"))

    def versions(self, name: str) -> R:
        """A model's versions with stages."""
        return self._do(_Call("GET", f"/v1/models/{name}/versions"))

    def set_stage(
        self, name: str, version: int | str, stage: str, *, gate: Mapping[str, Any] | None = None
    ) -> R:
        """Move a version to draft / staging / production / archived."""
        body: dict[str, Any] = {"stage": stage}
        if gate:
            body["gate"] = dict(gate)
        return self._do(_Call("POST", f"/v1/models/{name}/versions/{version}/stage", body))

    def promote(
        self,
        name: str,
        version: int | str,
        *,
        metric: str | None = None,
        tolerance: float = 0.0,
        higher_is_better: bool = True,
    ) -> R:
        """Promote to production, gated on ``metric`` when given (409 when refused)."""
        gate = (
            {"metric": metric, "tolerance": tolerance, "higher_is_better": higher_is_better}
            if metric
            else None
        )
        return self.set_stage(name, version, "production", gate=gate)

    def load(self, name: str, *, version: int | str | None = None, alias: str | None = None) -> R:
        """Load and warm a version (production by default)."""
        body = {"version": None if version is None else str(version), "alias": alias}
        return self._do(_Call("POST", f"/v1/models/{name}/load", body))

    def unload(self, name: str, version: int | str) -> R:
        """Drain and unload a version."""
        return self._do(_Call("POST", f"/v1/models/{name}/unload", {"version": str(version)}))

    def compare(self, name: str, a: int | str, b: int | str) -> R:
        """Compare two versions (params, metrics, signature, size, flavor)."""
        return self._do(
            _Call("GET", f"/v1/models/{name}/compare", params={"a": str(a), "b": str(b)})
        )

    def purge_cache(self, name: str, version: int | str | None = None) -> R:
        """Drop a model's cached predictions (of one version when given): ``{"purged": n}``."""
        params = None if version is None else {"version": str(version)}
        return self._do(_Call("DELETE", f"/v1/models/{name}/cache", params=params))

    def ready(self) -> R:
        """Readiness (raises ``SibylHTTPError`` 503 when not ready)."""
        return self._do(_Call("GET", "/readyz"))

    # ---- experiments ----------------------------------------------------------------------

    def create_experiment(
        self,
        name: str,
        model: str,
        variants: Sequence[Mapping[str, Any]],
        *,
        success_metrics: Sequence[str] = (),
        salt: str | None = None,
        description: str | None = None,
    ) -> R:
        """Create a draft A/B/n experiment; each variant is ``{"name", "version" | "alias",
        "weight", "control"?, "model"?}``; metrics like ``"success_rate >= 0.95 weight 1"``."""
        body: dict[str, Any] = {
            "name": name,
            "model": model,
            "variants": [dict(v) for v in variants],
            "success_metrics": list(success_metrics),
        }
        if salt is not None:
            body["salt"] = salt
        if description is not None:
            body["description"] = description
        return self._do(_Call("POST", "/v1/experiments", body))

    def experiments(self, *, model: str | None = None, status: str | None = None) -> R:
        """Experiments, oldest first, optionally of one model / in one status."""
        params = {k: v for k, v in (("model", model), ("status", status)) if v is not None}
        return self._do(_Call("GET", "/v1/experiments", params=params or None))

    def experiment(self, name: str) -> R:
        """One experiment with its variants and status."""
        return self._do(_Call("GET", f"/v1/experiments/{name}"))

    def start_experiment(self, name: str) -> R:
        """Start (or resume) routing traffic to the experiment."""
        return self._do(_Call("POST", f"/v1/experiments/{name}/start"))

    def pause_experiment(self, name: str) -> R:
        """Pause the experiment (production answers again)."""
        return self._do(_Call("POST", f"/v1/experiments/{name}/pause"))

    def stop_experiment(self, name: str) -> R:
        """Stop the experiment for good."""
        return self._do(_Call("POST", f"/v1/experiments/{name}/stop"))

    def experiment_results(self, name: str) -> R:
        """Per-variant numbers, comparisons with control, SRM and the decision."""
        return self._do(_Call("GET", f"/v1/experiments/{name}/results"))

    # ---- canary rollouts ------------------------------------------------------------------

    def start_canary(self, model: str, version: int | str, **settings: Any) -> R:
        """Start a canary of ``version`` against production; ``settings`` as in docs/canary.md
        (``steps=[10, 50, 100]``, ``dwell="10m"``, ``latency_margin=0.2``, ``name=…``…)."""
        body = {"version": str(version), **settings}
        return self._do(_Call("POST", f"/v1/models/{model}/canary", body))

    def canary(self, name: str) -> R:
        """A canary's phase, step, weights, current verdict and history."""
        return self._do(_Call("GET", f"/v1/experiments/{name}/canary"))

    def rollback_canary(self, name: str, reason: str | None = None) -> R:
        """Abort a canary: the baseline takes all traffic again."""
        body = {"reason": reason} if reason else None
        return self._do(_Call("POST", f"/v1/experiments/{name}/canary/rollback", body))

    # ---- ensembles ------------------------------------------------------------------------

    def create_ensemble(
        self,
        name: str,
        members: Sequence[Mapping[str, Any]],
        *,
        endpoint: str | None = None,
        combine: str = "auto",
        min_members: int = 1,
        member_timeout_ms: float | None = None,
        description: str | None = None,
    ) -> R:
        """Create and start an ensemble; each member is ``{"model", "version" | "alias",
        "weight"?, "name"?}``. Predict with ``predict(endpoint or name, ...)``."""
        body: dict[str, Any] = {
            "name": name,
            "members": [dict(m) for m in members],
            "combine": combine,
            "min_members": min_members,
        }
        extra = (("endpoint", endpoint), ("member_timeout_ms", member_timeout_ms),
                 ("description", description))  # fmt: skip
        body.update({k: v for k, v in extra if v is not None})
        return self._do(_Call("POST", "/v1/ensembles", body))

    def ensembles(self, *, status: str | None = None) -> R:
        """Ensembles, oldest first, optionally in one status."""
        params = {"status": status} if status else None
        return self._do(_Call("GET", "/v1/ensembles", params=params))

    def ensemble(self, name: str) -> R:
        """One ensemble with its members and settings."""
        return self._do(_Call("GET", f"/v1/ensembles/{name}"))

    def stop_ensemble(self, name: str) -> R:
        """Stop an ensemble for good (its endpoint stops answering)."""
        return self._do(_Call("DELETE", f"/v1/ensembles/{name}"))

    # ---- shadows --------------------------------------------------------------------------

    def create_shadow(
        self,
        model: str,
        version: int | str,
        *,
        share: float,
        name: str | None = None,
        candidate_model: str | None = None,
        **config: Any,
    ) -> R:
        """Create a draft shadow experiment mirroring ``share`` of ``model``'s unpinned traffic
        to ``version`` (of ``candidate_model``, default ``model``); ``config`` as in
        docs/shadow.md (``agreement``, ``tolerance``, ``max_concurrent``, ``timeout_ms``).
        Start it with ``start_experiment``."""
        candidate: dict[str, Any] = {"name": "candidate", "version": str(version)}
        if candidate_model:
            candidate["model"] = candidate_model
        target = f"{candidate_model}-{version}" if candidate_model else str(version)
        body = {
            "name": name or f"{model}-shadow-{target}",
            "model": model,
            "kind": "shadow",
            "variants": [
                {"name": "primary", "alias": "production", "control": True},
                candidate,
            ],
            "config": {"share": share, **config},
        }
        return self._do(_Call("POST", "/v1/experiments", body))

    def shadow_report(self, name: str) -> R:
        """Mirrored, dropped, errors, agreement with its interval, latency difference and the
        promotion gate's verdict, per candidate."""
        return self._do(_Call("GET", f"/v1/experiments/{name}/shadow"))

    def feedback(
        self,
        *,
        request_id: str | None = None,
        routing_key: str | None = None,
        experiment: str | None = None,
        model: str | None = None,
        success: bool | None = None,
        value: float | None = None,
        label: str | int | float | bool | None = None,
        row: int | None = None,
        event_at: str | None = None,
    ) -> R:
        """Report one outcome for a prediction (``request_id``) or a user (``routing_key``);
        ground truth: ``label`` (classifiers) or ``value`` (regressors), for one ``row`` of the
        request or all; ``event_at`` (ISO 8601 with offset) with ``routing_key`` names the
        prediction by time."""
        fields = (
            ("request_id", request_id),
            ("routing_key", routing_key),
            ("experiment", experiment),
            ("model", model),
            ("success", success),
            ("value", value),
            ("label", label),
            ("row", row),
            ("event_at", event_at),
        )
        return self._do(_Call("POST", "/v1/feedback", {k: v for k, v in fields if v is not None}))

    def feedback_many(self, items: Sequence[Mapping[str, Any]]) -> R:
        """Report many outcomes at once (stored all or none)."""
        return self._do(_Call("POST", "/v1/feedback", {"items": [dict(i) for i in items]}))

    # ---- the prediction log ---------------------------------------------------------------

    def predictions(
        self,
        name: str,
        *,
        limit: int = 100,
        since: str | None = None,
        until: str | None = None,
        status: str | None = None,
        version: int | str | None = None,
        request_id: str | None = None,
        inputs: bool = False,
    ) -> R:
        """A model's logged requests, newest first (times ISO 8601; ``inputs``: include them)."""
        fields = {"since": since, "until": until, "status": status, "request_id": request_id,
                  "version": None if version is None else str(version)}  # fmt: skip
        params = {"limit": str(limit), "inputs": str(inputs).lower(),
                  **{k: v for k, v in fields.items() if v is not None}}  # fmt: skip
        return self._do(_Call("GET", f"/v1/monitoring/models/{name}/predictions", params=params))

    def replay(self, name: str, version: int | str, **options: Any) -> R:
        """Re-score logged requests against ``version`` and compare with what was served
        (options: ``since``, ``until``, ``source_version``, ``limit``, ``tolerance``,
        ``max_disagreements``)."""
        body = {"version": str(version), **{k: v for k, v in options.items() if v is not None}}
        return self._do(_Call("POST", f"/v1/monitoring/models/{name}/replay", body))

    # ---- live quality, dashboard, statistics ------------------------------------------------

    def quality(self, name: str, *, window: str = "24h", version: int | str | None = None) -> R:
        """Realised quality per version over a window of prediction time (``"1h"``, …)."""
        params = {"window": window, **({"version": str(version)} if version is not None else {})}
        return self._do(_Call("GET", f"/v1/monitoring/models/{name}/quality", params=params))

    def dashboard(self, name: str, *, window: str | None = None) -> R:
        """Dashboard data of a model: version, health, statistics, hourly trend, alerts,
        drift."""
        params = {"window": window} if window else None
        return self._do(_Call("GET", f"/v1/monitoring/models/{name}/dashboard", params=params))

    def stats(self) -> R:
        """Service statistics: models loaded, memory, cache, queues, writer backlogs."""
        return self._do(_Call("GET", "/v1/stats"))

    # ---- drift and alerts -----------------------------------------------------------------

    def drift(self, name: str, *, version: int | str | None = None) -> R:
        """Drift report of a served model (its watched version, or ``version``) with the
        label-free accuracy estimate."""
        params = {"version": str(version)} if version is not None else None
        return self._do(_Call("GET", f"/v1/monitoring/models/{name}/drift", params=params))

    def upload_profile(
        self,
        name: str,
        version: int | str,
        data: bytes,
        *,
        content_type: str = "text/csv",
        categorical: Sequence[str] = (),
        numeric: Sequence[str] = (),
        exclude: Sequence[str] = (),
    ) -> R:
        """Set a version's reference profile from reference data: CSV bytes, or JSON bytes
        (``records`` | ``columns`` | ``rows`` + ``names``, optional ``outputs``)."""
        options = {"categorical": categorical, "numeric": numeric, "exclude": exclude}
        path = f"/v1/monitoring/models/{name}/versions/{version}/profile"
        query = "&".join(f"{k}={quote(v)}" for k, vs in options.items() for v in vs)
        return self._do(_Call("PUT", f"{path}?{query}" if query else path,
                              headers={"Content-Type": content_type}, content=data))  # fmt: skip

    def alerts(self, *, model: str | None = None, state: str | None = None) -> R:
        """Pending and firing alerts (``state``: e.g. ``firing`` or ``pending,firing``)."""
        params = {k: v for k, v in (("model", model), ("state", state)) if v is not None}
        return self._do(_Call("GET", "/v1/alerts", params=params or None))

    def alert_rules(self) -> R:
        """Every alert rule."""
        return self._do(_Call("GET", "/v1/alerts/rules"))

    def alert_rule(self, name: str) -> R:
        """One alert rule."""
        return self._do(_Call("GET", f"/v1/alerts/rules/{quote(name)}"))

    def create_alert_rule(self, rule: Mapping[str, Any]) -> R:
        """Create an alert rule (docs/alerts.md)."""
        return self._do(_Call("POST", "/v1/alerts/rules", dict(rule)))

    def replace_alert_rule(self, name: str, rule: Mapping[str, Any]) -> R:
        """Replace the alert rule called ``name``."""
        return self._do(_Call("PUT", f"/v1/alerts/rules/{quote(name)}", dict(rule)))

    def delete_alert_rule(self, name: str) -> R:
        """Delete an alert rule."""
        return self._do(_Call("DELETE", f"/v1/alerts/rules/{quote(name)}"))


class Client(_Operations[Any]):
    """Synchronous client; use as a context manager or call ``close()``."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        timeout: float = 30.0,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=url, timeout=timeout, headers=headers, transport=transport
        )

    def _do(self, call: _Call) -> Any:
        return _parse(
            self._http.request(
                call.method,
                call.path,
                json=call.json,
                params=call.params,
                headers=call.headers,
                content=call.content,
            )
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(_Operations[Awaitable[Any]]):
    """Asynchronous client; every operation returns an awaitable."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        timeout: float = 30.0,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=url, timeout=timeout, headers=headers, transport=transport
        )

    async def _request(self, call: _Call) -> Any:
        return _parse(
            await self._http.request(
                call.method,
                call.path,
                json=call.json,
                params=call.params,
                headers=call.headers,
                content=call.content,
            )
        )

    def _do(self, call: _Call) -> Awaitable[Any]:
        return self._request(call)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
