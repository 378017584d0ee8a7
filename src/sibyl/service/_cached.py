"""CachedBatcher: the prediction cache in front of a version's batcher, with its interface.

Each row of a request gets a key (:func:`~sibyl.cache.make_keys`: model, resolved version,
canonical digest of the row); rows already cached are answered from the cache, the others are
predicted by the real batcher in one sub-batch and cached. A version change is a new key
namespace, so a new version never answers with an old one's rows.

**Row encoding** (the cache holds ``bytes`` per row). A row of a :class:`Prediction` with
numeric / fixed-width arrays (labels, values, probabilities, named outputs — every numeric model)
is ``0x01`` + a small JSON header (each array's dtype and row shape, the classes, whether
``predictions`` holds one dict per row built from ``outputs``) + the row's raw bytes (≈ 85
bytes for a two-class classifier). Encoding is one ``tobytes`` and a slice per row, decoding one
``frombuffer`` with a structured dtype: ≈ 8 µs to encode and 9 µs to decode 32 rows, where
pickling each row's slice took ≈ 270 µs and 190 µs (one shared core). The header travels with
every row so a replica that never predicted a version can still decode it. Rows holding Python
objects (``object`` arrays: pyfunc outputs, list cells) or classes JSON cannot carry are ``0x02``
+ a pickle of the row. Pickle runs code when loaded: the store is trusted like the registry the
models themselves are unpickled from (a Redis that others can write to must not be the cache URL).
A row that does not decode (another format, a corrupt entry) makes the request predict
uncached; it is never an error.
"""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson
import structlog

from sibyl.batching import AdaptiveBatcher, Priority
from sibyl.cache import CachePolicy, KeyValueCache, MemoryStore, PredictionCache, make_keys
from sibyl.errors import DeadlineExceededError, InvalidInputError, OverloadedError, SibylError
from sibyl.monitoring.predlog import note_cached_rows
from sibyl.runtime.schema import InputSchema
from sibyl.runtime.types import Batch, Prediction
from sibyl.settings import Settings

log = structlog.get_logger(__name__)
Array = np.ndarray[Any, Any]
_RAW, _PICKLED = 1, 2
_PLAIN_CLASS = (int, float, str, bool)
_MAX_HEADERS = 64
_PICKLED_HEAD = bytes([_PICKLED])
_HEADS: dict[tuple[Any, ...], bytes] = {}
"""Header of each row layout seen (dtypes and row shapes, classes): built once, not per call."""


class _GaveUpError(asyncio.CancelledError):
    """The request leading a computation failed for reasons of its own (its deadline passed, its
    priority lane was full). Raised as a cancellation so the single flight lets the requests
    that joined it compute on their own instead of sharing that failure; the leader then gets
    its own error back."""


class CachedBatcher:
    """An :class:`~sibyl.batching.AdaptiveBatcher` behind the prediction cache; the same interface.

    * ``predict`` answers cached rows from ``cache`` and sends only the missing rows (one
      sub-batch, duplicates once) to ``batcher``; a request whose rows are all cached never
      reaches it. Identical rows in flight in other requests are awaited, not predicted twice
      (in the lane of the request that predicts them). When that request's own deadline passes
      or its lane is full, the requests waiting on it predict on their own; a model error is
      shared by all of them. Rows come back in request order; a failure to build keys or decode
      a row falls back to predicting the whole request uncached.
    * ``policy`` is the model's TTL (``enabled=False`` is not expected here: an opted-out model
      is simply not wrapped).
    * ``purge_on_close``: :meth:`close` drops the version's entries (set for an in-process cache,
      whose entries nobody else can read; a shared cache keeps them for other replicas).
    * Everything else (``drain``, ``queued_rows``, ``debug_state``, ``settings``, ``name``) is the
      batcher's. Event-loop only, as the batcher.
    """

    def __init__(
        self,
        batcher: AdaptiveBatcher,
        cache: PredictionCache,
        model: str,
        version: str,
        schema: InputSchema,
        policy: CachePolicy | None = None,
        *,
        purge_on_close: bool = False,
    ) -> None:
        self.batcher = batcher
        self.cache = cache
        self.model = model
        self.version = version
        self.policy = policy
        self.purge_on_close = purge_on_close
        self._columns = list(schema.names)
        self._headers: dict[bytes, _Layout] = {}
        self._warned = False

    # -- the batcher's interface -----------------------------------------------------------------
    async def predict(
        self, batch: Batch, *, priority: Priority = Priority.NORMAL, deadline: float | None = None
    ) -> Prediction:
        """Predict ``batch`` (see the class contract); raises what the batcher raises."""
        try:
            keys = make_keys(self.model, self.version, batch, self._columns)
        except (TypeError, InvalidInputError) as exc:  # no canonical form: serve uncached
            log.debug("cache_keys_failed", model=self.model, error=str(exc))
            return await self.batcher.predict(batch, priority=priority, deadline=deadline)
        live: list[tuple[list[str], Prediction]] = []
        own: list[SibylError] = []

        async def compute(missing: list[str]) -> list[bytes]:
            sub = batch if missing == keys else _rows(batch, _positions(keys, missing))
            try:
                pred = await self.batcher.predict(sub, priority=priority, deadline=deadline)
            except (DeadlineExceededError, OverloadedError) as exc:
                own.append(exc)  # this request's deadline or lane: not the joiners' fate
                raise _GaveUpError from exc
            live.append((missing, pred))
            return encode_rows(pred)

        try:
            values = await self.cache.get_or_compute(keys, compute, policy=self.policy)
        except _GaveUpError:
            raise own[0] from None
        if len(live) == 1 and live[0][0] == keys:
            return live[0][1]  # every row was missed and predicted here, in order
        try:
            answer = self._assemble(keys, values, live)
        except Exception as exc:  # an entry this code cannot read: answer without the cache
            level = log.debug if self._warned else log.warning
            self._warned = True
            level("cache_entry_unreadable", model=self.model, error=repr(exc))
            return await self.batcher.predict(batch, priority=priority, deadline=deadline)
        predicted = {key for missing, _ in live for key in missing}
        note_cached_rows(sum(key not in predicted for key in keys))  # for the prediction log
        return answer

    @property
    def queued_rows(self) -> int:
        """The batcher's queued rows."""
        return self.batcher.queued_rows

    async def drain(self) -> None:
        """Wait until the batcher has nothing queued or running."""
        await self.batcher.drain()

    async def close(self) -> None:
        """Close the batcher, then purge the version's entries when ``purge_on_close``."""
        await self.batcher.close()
        if self.purge_on_close:
            self.cache.purge(self.model, self.version)

    def debug_state(self) -> dict[str, Any]:
        """The batcher's state plus the cache policy in force."""
        ttl = None if self.policy is None else self.policy.ttl_s
        return {**self.batcher.debug_state(), "cache": {"enabled": True, "ttl_s": ttl}}

    def __getattr__(self, name: str) -> Any:  # settings, name, predictor, …: the batcher's
        if name == "batcher":  # not set yet (copy, unpickle): no recursion
            raise AttributeError(name)
        return getattr(self.batcher, name)

    # -- assembling an answer --------------------------------------------------------------------
    def _assemble(
        self, keys: list[str], values: list[bytes], live: list[tuple[list[str], Prediction]]
    ) -> Prediction:
        """The request's rows in order: from the predictions made here where there are some, the
        others decoded from ``values``."""
        parts: list[Prediction] = []
        where: dict[str, int] = {}
        offset = 0
        for missing, pred in live:
            parts.append(pred)
            for i, key in enumerate(missing):
                where.setdefault(key, offset + i)
            offset += len(pred)
        cached = [i for i, k in enumerate(keys) if k not in where]
        if cached:
            parts.append(self._decode([values[i] for i in cached]))
            for j, i in enumerate(cached):
                where.setdefault(keys[i], offset + j)
        whole = parts[0] if len(parts) == 1 else _concat(parts)
        order = np.fromiter((where[k] for k in keys), dtype=np.intp, count=len(keys))
        if len(order) == len(whole) and bool((order == np.arange(len(order))).all()):
            return whole
        return _take(whole, order)

    def _decode(self, values: list[bytes]) -> Prediction:
        """Rows encoded by :func:`encode_rows`, in order."""
        header = _header_of(values[0])
        if all(v.startswith(header) for v in values):  # one layout: the usual case
            return self._decode_group(header, values)
        groups: dict[bytes, list[int]] = {}
        for i, value in enumerate(values):
            groups.setdefault(_header_of(value), []).append(i)
        parts, order = [], []
        for header, idx in groups.items():
            parts.append(self._decode_group(header, [values[i] for i in idx]))
            order.extend(idx)
        inverse = np.empty(len(order), dtype=np.intp)
        inverse[np.asarray(order, dtype=np.intp)] = np.arange(len(order))
        return _take(_concat(parts), inverse)

    def _decode_group(self, header: bytes, values: list[bytes]) -> Prediction:
        if header[:1] == bytes([_PICKLED]):
            return _concat([pickle.loads(v[1:]) for v in values])
        layout = self._headers.get(header)
        if layout is None:
            if len(self._headers) >= _MAX_HEADERS:
                self._headers.clear()
            layout = self._headers[header] = _Layout.parse(header)
        return layout.decode(values, len(header))


class _Layout:
    """How the raw rows of one header are laid out: arrays, their dtypes and row shapes."""

    def __init__(self, spec: dict[str, Any]) -> None:
        fields = [(name, np.dtype(dtype), tuple(shape)) for name, dtype, shape in spec["f"]]
        self.names = [name for name, _, _ in fields]
        self.row = np.dtype(fields)  # packed: a row's bytes, one field per array
        classes = spec["c"]
        self.classes: tuple[Any, ...] | None = None if classes is None else tuple(classes)
        self.dict_rows: bool = spec["d"]

    @classmethod
    def parse(cls, header: bytes) -> _Layout:
        return cls(orjson.loads(header[3:]))

    def decode(self, values: Sequence[bytes], skip: int) -> Prediction:
        n = len(values)
        data = values[0][skip:] if n == 1 else b"".join([v[skip:] for v in values])
        table = np.frombuffer(data, dtype=self.row, count=n)
        arrays = {name: table[name].copy() for name in self.names}  # owned, contiguous
        outputs = {k[2:]: v for k, v in arrays.items() if k.startswith("o:")} or None
        preds = _dict_rows(outputs, n) if self.dict_rows and outputs else arrays["p"]
        return Prediction(preds, arrays.get("q"), self.classes, outputs)


def encode_rows(pred: Prediction) -> list[bytes]:
    """One ``bytes`` per row of ``pred`` (see the module doc for the format)."""
    n = len(pred)
    outputs = pred.outputs
    dict_rows = outputs is not None and len(outputs) > 1
    names: list[str] = [] if dict_rows else ["p"]
    arrays: list[Array] = [] if dict_rows else [pred.predictions]
    if pred.probabilities is not None:
        names.append("q")
        arrays.append(pred.probabilities)
    if outputs is not None:
        names.extend("o:" + k for k in outputs)
        arrays.extend(outputs.values())
    layout = (*names, *[(a.dtype, a.shape[1:]) for a in arrays], pred.classes, dict_rows)
    head = _HEADS.get(layout)
    if head is None:
        if len(_HEADS) >= _MAX_HEADERS:
            _HEADS.clear()
        head = _HEADS[layout] = _head(names, arrays, pred.classes, dict_rows)
    if head == _PICKLED_HEAD:
        return [head + pickle.dumps(pred.slice(i, i + 1), 5) for i in range(n)]
    if n == 1:
        return [head + b"".join([a.tobytes() for a in arrays])]
    if not arrays:
        return [head] * n
    if len(arrays) == 1:
        buf = arrays[0].tobytes()
    else:
        flat = [np.ascontiguousarray(a).reshape(n, -1).view(np.uint8) for a in arrays]
        buf = np.concatenate(flat, axis=1).tobytes()
    width = len(buf) // n if n else 0
    return [head + buf[i : i + width] for i in range(0, len(buf), width)] if width else [head] * n


def _head(names: list[str], arrays: list[Array], classes: Any, dict_rows: bool) -> bytes:
    """The header of rows laid out as ``arrays`` (``_PICKLED_HEAD`` when raw bytes cannot carry
    them: Python objects, or classes JSON cannot carry exactly)."""
    if any(a.dtype.hasobject for a in arrays) or (
        classes is not None and any(type(c) not in _PLAIN_CLASS for c in classes)
    ):
        return _PICKLED_HEAD
    spec = {
        "f": [[name, a.dtype.str, a.shape[1:]] for name, a in zip(names, arrays, strict=True)],
        "c": None if classes is None else list(classes),
        "d": dict_rows,
    }
    body = orjson.dumps(spec)
    return bytes([_RAW]) + len(body).to_bytes(2, "little") + body


def _header_of(value: bytes) -> bytes:
    if value[0] == _RAW:
        return value[: 3 + int.from_bytes(value[1:3], "little")]
    if value[0] == _PICKLED:
        return value[:1]
    raise ValueError(f"unknown cache entry format {value[0]}")


def _dict_rows(outputs: dict[str, Array], n: int) -> Array:
    """``predictions`` of a multi-output model: one ``{name: value}`` per row (as the runtime)."""
    rows = np.empty(n, dtype=object)
    names = list(outputs)
    for i, row in enumerate(zip(*(outputs[k] for k in names), strict=True)):
        rows[i] = dict(zip(names, row, strict=True))
    return rows


def _positions(keys: list[str], wanted: list[str]) -> list[int]:
    """The first row of each wanted key."""
    first: dict[str, int] = {}
    for i, key in enumerate(keys):
        first.setdefault(key, i)
    return [first[k] for k in wanted]


def _rows(batch: Batch, positions: list[int]) -> Batch:
    if isinstance(batch, np.ndarray):
        return batch[positions]
    return batch.iloc[positions].reset_index(drop=True)


def _concat(parts: Sequence[Prediction]) -> Prediction:
    """Predictions of the same version one after the other."""
    first = parts[0]
    probs = None
    if first.probabilities is not None:
        probs = np.concatenate([_need(p.probabilities) for p in parts])
    outputs = None
    if first.outputs is not None:
        outputs = {k: np.concatenate([_need(p.outputs)[k] for p in parts]) for k in first.outputs}
    preds = np.concatenate([p.predictions for p in parts])
    return Prediction(preds, probs, first.classes, outputs)


def _need(value: Any) -> Any:
    if value is None:
        raise ValueError("cached rows and predicted rows have different outputs")
    return value


def _take(pred: Prediction, order: Array) -> Prediction:
    probs = None if pred.probabilities is None else pred.probabilities[order]
    outputs = None if pred.outputs is None else {k: v[order] for k, v in pred.outputs.items()}
    return Prediction(pred.predictions[order], probs, pred.classes, outputs)


def policy_for(settings: Settings, model: str) -> CachePolicy | None:
    """The cache policy of ``model`` from the settings (``None``: not cached)."""
    if not settings.cache.enabled:
        return None
    override = settings.cache_overrides.get(model)
    if override is None:
        return CachePolicy(ttl_s=settings.cache.ttl_s)
    if not override.enabled:
        return None
    return CachePolicy(ttl_s=override.ttl_s or settings.cache.ttl_s)


def is_local(cache: PredictionCache) -> bool:
    """Whether ``cache`` lives in this process only (its entries die with a version)."""
    return isinstance(cache, KeyValueCache) and isinstance(cache.store, MemoryStore)
