"""ModelManager: which version answers, loading on demand, preload, readiness and hot swap."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import structlog

from sibyl.batching import AdaptiveBatcher
from sibyl.cache import PredictionCache
from sibyl.errors import ModelLoadError, SibylError
from sibyl.monitoring import Metrics
from sibyl.registry import AliasChange, ModelRegistry, RegistryWatcher, VersionInfo
from sibyl.runtime.loader import LoadedModel, load_model
from sibyl.service._cached import CachedBatcher, is_local, policy_for
from sibyl.service._hooks import ServingHook
from sibyl.service._pool import ModelPool
from sibyl.service._resilience import new_breaker
from sibyl.service._served import ServedVersion
from sibyl.settings import Settings

log = structlog.get_logger(__name__)
PRODUCTION = "production"
ProductionGate = Callable[[AliasChange, str | None], Awaitable[bool]]
"""``gate(change, serving)``: may production move to ``change.new_version`` (``serving``: the
version answering now, if any)? ``False`` keeps the serving version; the gate handles the alias
(e.g. moves it back) and says why."""
ProductionListener = Callable[[ServedVersion, ServedVersion | None], bool]
"""``listener(new, old)``: ``new`` became its model's production version in place of ``old``;
return True to keep ``old`` loaded (e.g. as a fallback) instead of unloading it."""


def _is_production_ref(ref: str | None) -> bool:
    return ref is None or ref.lstrip("@") == PRODUCTION


class ModelManager:
    """Resolves requests to served versions and keeps production versions warm.

    * Unpinned requests go to the model's current production version, held in memory: the hot
      path makes no registry call. Pinned requests (a version number or an alias) use the
      alias map the registry watcher keeps fresh, and load the version on first use.
    * Concurrent requests for a version that is loading share one load.
    * Hot swap: when the production alias moves (changed by anyone — sibyl, the MLflow UI or a
      plain MLflow client), the new version is loaded and warmed beside the old, swapped in
      atomically (one dict assignment on the event loop), and the old one is drained and
      unloaded. A failed load leaves the old version serving and records why.
    * Every served version gets its circuit breaker (``settings.breaker_for``), on ``clock``.
    * ``gate`` (optional) is asked before production moves to another version; a version it
      refuses is never loaded nor swapped in (see :data:`ProductionGate`).

    Event-loop only, except the watcher callback which hops onto the loop.
    """

    def __init__(
        self,
        registry: ModelRegistry,
        settings: Settings,
        metrics: Metrics,
        cache: PredictionCache | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        gate: ProductionGate | None = None,
    ) -> None:
        self.registry = registry
        self.gate = gate
        """Asked before production moves to another version (see :data:`ProductionGate`)."""
        self.settings = settings
        self.metrics = metrics
        self.cache = cache
        """The prediction cache in front of every version whose model's policy enables it."""
        self.clock = clock
        """The circuit breakers' clock (seconds; tests drive it)."""
        self._listeners: list[ProductionListener] = []
        self._hooks: list[ServingHook] = []
        self.pool = ModelPool(settings.runtime, metrics, on_remove=self._forget)
        self._production: dict[str, ServedVersion] = {}
        self._aliases: dict[str, dict[str, str]] = {}
        self._loading: dict[tuple[str, str], asyncio.Future[ServedVersion]] = {}
        self._errors: dict[str, dict[str, Any]] = {}
        self._required: set[str] = set()
        self._ready = False
        self._loader = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sibyl-load")
        self._watcher: RegistryWatcher | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Read aliases, preload (required list + production models), start the watcher."""
        self._loop = asyncio.get_running_loop()
        await self.refresh_aliases()
        targets = self._preload_targets()
        for name, ref in targets:
            try:
                await self.get(name, ref)
            except SibylError as exc:  # load failures are recorded by _load; this covers resolve
                self._errors.setdefault(
                    name, {"version": ref, "error": exc.message, "at": time.time()}
                )
                log.error("preload_failed", model=name, ref=ref, error=exc.message)
        self._ready = True
        interval = self.settings.registry.watch_interval_s
        if interval > 0:
            self._watcher = RegistryWatcher(self.registry, interval, self._on_change_threadsafe)
            self._watcher.start()
        log.info("models_ready", loaded=[f"{s.name}:{s.version}" for s in self.pool.versions()])

    async def stop(self) -> None:
        """Stop watching, drain and unload everything."""
        if self._watcher is not None:
            self._watcher.stop()
        await self.pool.close_all()
        self._loader.shutdown(wait=False)

    @property
    def ready(self) -> bool:
        """True when start-up finished and every required preload is loaded and warm."""
        return self._ready and all(
            n in self._production or self._pinned_loaded(n) for n in self._required
        )

    def readiness(self) -> dict[str, Any]:
        """Why (not) ready: for ``/readyz``."""
        return {
            "ready": self.ready,
            "started": self._ready,
            "required": sorted(self._required),
            "loaded": [f"{s.name}:{s.version}" for s in self.pool.versions()],
            "errors": self._errors,
        }

    # -- lookup ---------------------------------------------------------------------------------
    def lookup(self, name: str, ref: str | None) -> ServedVersion | None:
        """The served version for a request, if already loaded (no I/O, the hot path)."""
        if _is_production_ref(ref):
            return self._production.get(name)
        assert ref is not None
        version = ref if ref.isdigit() else self._aliases.get(name, {}).get(ref.lstrip("@"))
        return None if version is None else self.pool.get(name, version)

    async def get(self, name: str, ref: str | None) -> ServedVersion:
        """The served version for a request, loading it if needed.

        Raises ``NotFoundError`` (unknown model / version / alias), ``ModelLoadError``.
        """
        sv = self.lookup(name, ref)
        if sv is not None:
            return sv
        info = await self._in_thread(self.registry.resolve, name, ref)
        sv = await self._ensure(info)
        if _is_production_ref(ref) and name not in self._production:
            self._production[name] = sv
            self._notify(sv, None)
        return sv

    def known(self, name: str) -> bool:
        """Whether ``name`` is a registered model (bounds metric label cardinality)."""
        return name in self._aliases or name in self._production

    def model_names(self) -> list[str]:
        """Registered model names seen by the last alias snapshot."""
        return sorted(set(self._aliases) | set(self._production))

    def production(self, name: str) -> ServedVersion | None:
        """The version currently answering unpinned requests."""
        return self._production.get(name)

    def on_production(self, listener: ProductionListener) -> None:
        """Call ``listener(new, old)`` each time a version becomes production (first use, hot
        swap, ``add_loaded``); see :data:`ProductionListener`."""
        self._listeners.append(listener)

    def add_serving_hook(self, hook: ServingHook) -> None:
        """Let ``hook`` prepare, wrap and release every version served from now on (see
        :class:`~sibyl.service._hooks.ServingHook`)."""
        self._hooks.append(hook)

    def _notify(self, new: ServedVersion, old: ServedVersion | None) -> bool:
        keep = False
        for listener in self._listeners:
            keep = listener(new, old) or keep
        return keep

    def status(self, name: str) -> dict[str, Any]:
        """Serving state of one model for ``GET /v1/models/{name}``."""
        prod = self._production.get(name)
        return {
            "name": name,
            "aliases": self._aliases.get(name, {}),
            "serving_version": prod.version if prod else None,
            "loaded": [sv.describe() for sv in self.pool.versions(name)],
            "last_error": self._errors.get(name),
        }

    # -- control --------------------------------------------------------------------------------
    async def load(self, name: str, ref: str | None) -> ServedVersion:
        """Load (and warm) a version explicitly."""
        return await self.get(name, ref)

    async def unload(self, name: str, version: str) -> bool:
        """Unload a version (drained first); an unpinned production version reloads on demand."""
        if self._production.get(name) is not None and self._production[name].version == version:
            del self._production[name]
        removed = self.pool.remove(name, version)
        await self.pool.wait_closed()
        return removed is not None

    async def refresh_aliases(self) -> None:
        """Re-read every model's aliases from the registry."""
        try:
            self._aliases = await self._in_thread(self.registry.aliases)
        except SibylError as exc:
            log.error("registry_unavailable", error=exc.message)

    # -- loading --------------------------------------------------------------------------------
    async def _ensure(self, info: VersionInfo) -> ServedVersion:
        key = (info.name, info.version)
        sv = self.pool.get(*key)
        if sv is not None:
            return sv
        fut = self._loading.get(key)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self._loading[key] = fut
            task = asyncio.get_running_loop().create_task(self._load(info, fut))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(fut)

    async def _load(self, info: VersionInfo, fut: asyncio.Future[ServedVersion]) -> None:
        key = (info.name, info.version)
        started = time.perf_counter()
        try:
            loaded = await self._in_thread(self._load_sync, info)
            sv = self._serve(loaded)
            self.metrics.load_duration.labels(info.name).observe(time.perf_counter() - started)
            self._errors.pop(info.name, None)
            log.info(
                "model_loaded",
                model=info.name,
                version=info.version,
                engine=loaded.engine.engine.value,
                reason=loaded.engine.reason,
                seconds=round(time.perf_counter() - started, 3),
            )
            fut.set_result(sv)
        except Exception as exc:
            err = (
                exc
                if isinstance(exc, SibylError)
                else ModelLoadError(
                    f"Model '{info.name}' version {info.version} could not be loaded: {exc!r}"
                )
            )
            self._errors[info.name] = {
                "version": info.version,
                "error": err.message,
                "at": time.time(),
            }
            self.metrics.errors.labels(info.name, "load").inc()
            log.error("model_load_failed", model=info.name, version=info.version, error=err.message)
            fut.set_exception(err)
            fut.exception()  # mark retrieved: a load nobody awaits is not an unhandled error
        finally:
            self._loading.pop(key, None)

    def _load_sync(self, info: VersionInfo) -> LoadedModel:
        path = self.registry.download(info.name, info.version, self.settings.download_dir())
        loaded = load_model(
            path,
            name=info.name,
            version=info.version,
            settings=self.settings.runtime,
            tags=info.tags,
        )
        for hook in self._hooks:
            try:
                hook.prepare(loaded)
            except Exception:  # the version serves without the hook's feature
                log.exception("serving_hook_failed", model=info.name, version=info.version)
        return loaded

    def _serve(self, loaded: LoadedModel) -> ServedVersion:
        vm = self.metrics.for_version(loaded.name, loaded.version)
        predictor = loaded.predictor
        for hook in self._hooks:
            predictor = hook.wrap(loaded, predictor)
        batcher = AdaptiveBatcher(
            predictor,
            self.settings.batching_for(loaded.name),
            name=f"{loaded.name}:{loaded.version}",
            threads=self.settings.runtime.inference_threads,
            observer=vm,
        )
        limit = self.settings.batching_for(loaded.name).max_concurrency
        sv = ServedVersion(loaded, self._cached(loaded, batcher), vm, max_concurrency=limit)
        sv.breaker = new_breaker(
            self.settings, self.metrics, loaded.name, loaded.version, self.clock
        )
        sv.idle.set()
        protected = {(s.name, s.version) for s in self._production.values()}
        pinned = {
            (s.name, s.version) for s in self._production.values() if s.name in self._required
        }
        self.pool.add(sv, protected, pinned)
        return sv

    def _cached(
        self, loaded: LoadedModel, batcher: AdaptiveBatcher
    ) -> AdaptiveBatcher | CachedBatcher:
        """``batcher`` behind the prediction cache when the model's policy caches it."""
        policy = policy_for(self.settings, loaded.name)
        if self.cache is None or policy is None:
            return batcher
        return CachedBatcher(
            batcher,
            self.cache,
            loaded.name,
            loaded.version,
            loaded.schema,
            policy,
            purge_on_close=is_local(self.cache),  # nobody else can read its entries
        )

    def add_loaded(self, loaded: LoadedModel, *, production: bool = True) -> ServedVersion:
        """Serve an already loaded model (in-process pipelines and tests of the machinery)."""
        sv = self._serve(loaded)
        if production:
            old = self._production.get(loaded.name)
            self._production[loaded.name] = sv
            self._notify(sv, old)
        self._aliases.setdefault(loaded.name, {})
        return sv

    def _forget(self, sv: ServedVersion) -> None:
        """The pool dropped ``sv`` (evicted or unloaded): stop routing unpinned requests to it."""
        if self._production.get(sv.name) is sv:
            del self._production[sv.name]
        for hook in self._hooks:
            hook.release(sv.name, sv.version)

    # -- hot swap -------------------------------------------------------------------------------
    def _on_change_threadsafe(self, change: AliasChange) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self._spawn_change, change)

    def _spawn_change(self, change: AliasChange) -> None:
        task = asyncio.get_running_loop().create_task(self.apply_change(change))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def apply_change(self, change: AliasChange) -> None:
        """React to an alias that appeared, moved or disappeared."""
        aliases = self._aliases.setdefault(change.name, {})
        if change.new_version is None:
            aliases.pop(change.alias, None)
        else:
            aliases[change.alias] = change.new_version
        if change.alias != PRODUCTION:
            return
        if change.new_version is None:
            old = self._production.pop(change.name, None)
            if old is not None:
                self.pool.remove(old.name, old.version)
            return
        if self.gate is not None and not await self._gate_allows(change):
            return
        await self._swap(change.name, change.new_version)

    async def _gate_allows(self, change: AliasChange) -> bool:
        """Ask the production gate before loading the new version; when it refuses, the
        serving version stays and the alias map is re-read (the gate may have moved it back)."""
        assert self.gate is not None
        serving = self._production.get(change.name)
        try:
            allowed = await self.gate(change, serving.version if serving else None)
        except Exception:  # a broken gate must not let an unvetted version in
            log.exception("production_gate_failed", model=change.name, version=change.new_version)
            allowed = False
        if not allowed:
            await self.refresh_aliases()
        return allowed

    async def _swap(self, name: str, version: str) -> None:
        old = self._production.get(name)
        if old is not None and old.version == version:
            return
        try:
            info = await self._in_thread(self.registry.get_version, name, version)
            new = await self._ensure(info)
        except SibylError as exc:
            log.error(
                "hot_swap_failed",
                model=name,
                version=version,
                error=exc.message,
                serving=old.version if old else None,
            )
            return
        if self._aliases.get(name, {}).get(PRODUCTION) != version:
            log.info("hot_swap_superseded", model=name, version=version)
            if version not in self._aliases.get(name, {}).values():
                self.pool.remove(name, version)  # loaded for nothing: give the memory back
            return  # the alias moved on while this version loaded; the newer swap decides
        self._production[name] = new  # the atomic switch
        self.metrics.swaps.labels(name).inc()
        log.info("hot_swap", model=name, old=old.version if old else None, new=version)
        keep = self._notify(new, old)
        if old is not None and old is not new and not keep:
            self.pool.remove(old.name, old.version)  # drains in-flight, then unloads

    # -- helpers --------------------------------------------------------------------------------
    def _preload_targets(self) -> list[tuple[str, str | None]]:
        targets: list[tuple[str, str | None]] = []
        for spec in self.settings.runtime.preload:
            name, ref = _parse_spec(spec)
            self._required.add(name)
            targets.append((name, ref))
        if self.settings.runtime.preload_all_production:
            for name, aliases in self._aliases.items():
                if PRODUCTION in aliases and (name, None) not in targets:
                    targets.append((name, None))
        return targets

    def _pinned_loaded(self, name: str) -> bool:
        return any(sv.name == name for sv in self.pool.versions(name))

    async def _in_thread(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._loader, fn, *args)


def _parse_spec(spec: str) -> tuple[str, str | None]:
    """``"churn"`` → production, ``"churn@staging"`` → alias, ``"churn:3"`` → version 3."""
    if "@" in spec:
        name, alias = spec.split("@", 1)
        return name, alias
    if ":" in spec:
        name, version = spec.rsplit(":", 1)
        return name, version
    return spec, None
