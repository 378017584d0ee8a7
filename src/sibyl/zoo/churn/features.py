"""Window features of an event stream, in batch (pandas) and online (one event at a time).

For every window length ``d`` (days) and behaviour ``b`` the features of a user as of time ``t``
are

* ``{b}_{d}d`` — the number of events of type ``b`` with ``t - d days < timestamp <= t``;
* ``{b}_per_month_{d}d`` — that count scaled to a :data:`MONTH_DAYS`-day month.

Both implementations compute the counts on integer nanoseconds and the rates with the same
float operation, so :class:`OnlineFeatures` equals :func:`window_features` exactly.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sibyl.errors import InvalidInputError
from sibyl.zoo.churn.simulate import EVENT_TYPES

MONTH_DAYS = 30
"""Days in the "month" of the per-month rates."""

DEFAULT_WINDOWS: tuple[int, ...] = (7, 28)
_NS_PER_DAY = 86_400 * 10**9
_TYPE_INDEX = {name: i for i, name in enumerate(EVENT_TYPES)}

TimeLike = pd.Timestamp | dt.datetime | dt.date | np.datetime64 | str


def feature_names(days: Sequence[int] = DEFAULT_WINDOWS) -> list[str]:
    """Column names, in order: all counts per window, then all per-month rates per window."""
    counts = [f"{b}_{d}d" for d in days for b in EVENT_TYPES]
    rates = [f"{b}_per_month_{d}d" for d in days for b in EVENT_TYPES]
    return counts + rates


def _to_ns(t: TimeLike) -> int:
    return int(pd.Timestamp(t).value)


def _check_days(days: Sequence[int]) -> tuple[int, ...]:
    if not days or any(int(d) <= 0 for d in days):
        raise InvalidInputError(f"window lengths must be positive days, got {days!r}", field="days")
    return tuple(int(d) for d in days)


def _rates(counts: np.ndarray, days: tuple[int, ...]) -> np.ndarray:
    """Per-month rates from counts laid out window-major (the same op online and in batch)."""
    k = len(EVENT_TYPES)
    scale = np.repeat(np.asarray([MONTH_DAYS / d for d in days], dtype=np.float64), k)
    result: np.ndarray = counts.astype(np.float64) * scale
    return result


def window_features(
    events: pd.DataFrame,
    as_of: TimeLike,
    days: Sequence[int] = DEFAULT_WINDOWS,
    users: Iterable[int] | None = None,
) -> pd.DataFrame:
    """Features of every user as of ``as_of``, computed in batch.

    ``events`` has columns ``user_id``, ``timestamp``, ``event_type`` (any order). The result
    is indexed by ``user_id``: the given ``users``, or by default every user with an event at or
    before ``as_of`` (zero counts when a window is empty). Columns follow :func:`feature_names`.
    Raises :class:`InvalidInputError` for non-positive windows or unknown event types.
    """
    windows = _check_days(days)
    t = _to_ns(as_of)
    ts = events["timestamp"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    uid = events["user_id"].to_numpy(dtype=np.int64)
    codes = _type_codes(events["event_type"])
    seen = ts <= t
    index = np.unique(uid[seen]) if users is None else np.asarray(list(users), dtype=np.int64)
    k = len(EVENT_TYPES)
    counts = np.zeros((len(index), k * len(windows)), dtype=np.int64)
    for w, d in enumerate(windows):
        mask = seen & (ts > t - d * _NS_PER_DAY)
        rows = np.searchsorted(index, uid[mask]) if users is None else _positions(index, uid[mask])
        keep = rows >= 0
        np.add.at(counts, (rows[keep], w * k + codes[mask][keep]), 1)
    values = np.hstack([counts.astype(np.float64), _rates(counts, windows)])
    frame = pd.DataFrame(values, columns=feature_names(windows), index=pd.Index(index))
    return frame.rename_axis("user_id")


def _positions(index: np.ndarray, uid: np.ndarray) -> np.ndarray:
    """Row of each ``uid`` in the unsorted ``index``; -1 where absent."""
    lookup = pd.Index(index)
    result: np.ndarray = lookup.get_indexer(uid)
    return result


def _type_codes(column: pd.Series) -> np.ndarray:
    dtype = column.dtype
    if isinstance(dtype, pd.CategoricalDtype) and tuple(dtype.categories) == EVENT_TYPES:
        codes: np.ndarray = column.cat.codes.to_numpy(dtype=np.int64)
        return codes
    unknown = sorted(set(column.astype(str).unique()) - set(EVENT_TYPES))
    if unknown:
        raise InvalidInputError(
            f"unknown event types {unknown}; expected one of {list(EVENT_TYPES)}",
            field="event_type",
        )
    codes = pd.Categorical(column, categories=list(EVENT_TYPES)).codes.astype(np.int64)
    return codes


@dataclass(slots=True)
class _Window:
    """Events of one user inside one window: a FIFO of (ns, type) and running counts."""

    length_ns: int
    queue: deque[tuple[int, int]] = field(default_factory=deque)
    counts: list[int] = field(default_factory=lambda: [0] * len(EVENT_TYPES))

    def add(self, ns: int, code: int) -> None:
        self.queue.append((ns, code))
        self.counts[code] += 1

    def evict(self, as_of_ns: int) -> None:
        horizon = as_of_ns - self.length_ns
        queue, counts = self.queue, self.counts
        while queue and queue[0][0] <= horizon:
            counts[queue.popleft()[1]] -= 1


class OnlineFeatures:
    """Streaming twin of :func:`window_features`.

    Feed events in non-decreasing time order with :meth:`update`; ask :meth:`features` (one
    user) or :meth:`frame` (all users seen) as of any time not before the last event fed. Each
    event is appended and evicted once per window, so the cost is O(1) amortised per event and
    O(windows x behaviours) per query; memory holds only the events inside the longest window.
    Not thread-safe: one instance per consumer. Out-of-order events or queries raise
    :class:`InvalidInputError`, as do unknown event types.
    """

    def __init__(self, days: Sequence[int] = DEFAULT_WINDOWS) -> None:
        self.days = _check_days(days)
        self.columns = feature_names(self.days)
        self._users: dict[int, list[_Window]] = {}
        self._watermark = np.iinfo(np.int64).min

    def update(self, user_id: int, timestamp: TimeLike, event_type: str) -> None:
        """Consume one event."""
        code = _TYPE_INDEX.get(str(event_type))
        if code is None:
            raise InvalidInputError(
                f"unknown event type {event_type!r}; expected one of {list(EVENT_TYPES)}",
                field="event_type",
            )
        ns = self._advance(_to_ns(timestamp))
        windows = self._users.get(user_id)
        if windows is None:
            windows = [_Window(d * _NS_PER_DAY) for d in self.days]
            self._users[user_id] = windows
        for window in windows:
            window.evict(ns)
            window.add(ns, code)

    def _advance(self, ns: int) -> int:
        if ns < self._watermark:
            raise InvalidInputError(
                f"event or query at {pd.Timestamp(ns)} is before the last one seen "
                f"({pd.Timestamp(self._watermark)}); feed events in time order",
                field="timestamp",
            )
        self._watermark = ns
        return ns

    def _counts(self, user_id: int, ns: int) -> list[int]:
        windows = self._users.get(user_id)
        if windows is None:
            return [0] * (len(EVENT_TYPES) * len(self.days))
        row: list[int] = []
        for window in windows:
            window.evict(ns)
            row.extend(window.counts)
        return row

    def features(self, user_id: int, as_of: TimeLike) -> dict[str, float]:
        """Features of ``user_id`` as of ``as_of`` (all zero for an unseen user)."""
        ns = self._advance(_to_ns(as_of))
        counts = np.asarray([self._counts(user_id, ns)], dtype=np.int64)
        values = np.hstack([counts.astype(np.float64), _rates(counts, self.days)])[0]
        return dict(zip(self.columns, values.tolist(), strict=True))

    def frame(self, as_of: TimeLike, users: Iterable[int] | None = None) -> pd.DataFrame:
        """Features of ``users`` (default: every user seen, sorted) as a :func:`window_features`
        shaped frame."""
        ns = self._advance(_to_ns(as_of))
        index = sorted(self._users) if users is None else list(users)
        counts = np.asarray([self._counts(u, ns) for u in index], dtype=np.int64).reshape(
            len(index), len(EVENT_TYPES) * len(self.days)
        )
        values = np.hstack([counts.astype(np.float64), _rates(counts, self.days)])
        frame = pd.DataFrame(
            values, columns=self.columns, index=pd.Index(np.asarray(index, dtype=np.int64))
        )
        return frame.rename_axis("user_id")

    @property
    def users(self) -> list[int]:
        """Users seen so far, sorted."""
        return sorted(self._users)
