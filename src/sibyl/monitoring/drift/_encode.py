"""Batches → window state vectors, vectorised per batch (O(1) work per column per row).

One state vector per batch (or per chunk of a batch) holds, for the profile's columns
(features, then outputs)::

    [ bin counts of every column, concatenated                (layout of _profile) |
      bin excess of every numeric column's bins                (see bin_anchors)     |
      Σ z, then Σ z² per numeric column, z = (x − μ_ref) / σ_ref                     ]

Vectors add, so a window is the sum of its buckets. Numeric bins come from comparing the batch
with the reference edges (a broadcast compare for small batches, ``searchsorted`` per column for
big ones), categorical codes from one dict lookup per value; the vector is then two ``bincount``
calls (counts, excess) and two column sums (z, z²).
:class:`Encoder` is immutable after construction and safe to share between threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sibyl.monitoring.drift._profile import (
    NULL_BIN,
    CategoricalProfile,
    ColumnProfile,
    NumericProfile,
    ReferenceProfile,
)
from sibyl.monitoring.drift._read import BatchReader, batch_length, categorical_codes, lookup_table

# numeric binning strategy by batch size (measured: bench/drift.py, 20 features × 22 edges)
_BROADCAST_MAX_ROWS = 16  # compare with every edge, count along the last axis
_MATMUL_MAX_ROWS = 96  # same compare, counted by a float32 matrix product; above: searchsorted


def numeric_bins(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index of each value (0 null, 1 below, 2… interior, len(edges)+1 above)."""
    index = np.searchsorted(edges, x, side="right") + 1
    index[~np.isfinite(x)] = NULL_BIN
    return index


def bin_anchors(edges: np.ndarray) -> np.ndarray:
    """Per bin, the finite edge its *excess* is measured from: a value's excess is
    ``|x − anchor|`` — its distance above the lower edge, or below e₀ for 'below'."""
    return np.concatenate([[0.0, edges[0]], edges])


def numeric_excess(x: np.ndarray, index: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Σ excess per bin of one column (``index`` from :func:`numeric_bins`; null bin: 0)."""
    anchors = bin_anchors(edges)
    excess = np.where(index != NULL_BIN, np.abs(x - anchors[index]), 0.0)
    return np.bincount(index, weights=excess, minlength=len(anchors))


class Encoder:
    """Maps batches of one profile's columns to state vectors.

    ``columns`` names the columns of 2-D array batches (default: the profile's feature order).
    """

    def __init__(self, profile: ReferenceProfile, columns: Sequence[str] | None = None) -> None:
        self.profile = profile
        self.columns: tuple[ColumnProfile, ...] = profile.features + profile.outputs
        names = tuple(columns) if columns is not None else profile.feature_names
        self._reader = BatchReader(profile, names)
        sizes = np.array([len(c.counts) for c in self.columns], dtype=np.intp)
        self.bin_offsets = _starts(sizes)
        self.bin_sizes = sizes
        self.n_bins = int(sizes.sum())
        self.numeric_index = tuple(
            i for i, c in enumerate(self.columns) if isinstance(c, NumericProfile)
        )
        categorical = [i for i, c in enumerate(self.columns) if isinstance(c, CategoricalProfile)]
        self._categorical_offsets = self.bin_offsets[categorical]
        self._tables = [lookup_table(self.columns[i].values) for i in categorical]  # type: ignore[union-attr]
        self._init_numeric([self.columns[i] for i in self.numeric_index])  # type: ignore[misc]

    def _init_numeric(self, numeric: list[NumericProfile]) -> None:
        self.n_numeric = len(numeric)
        self.edges = [np.asarray(c.edges, dtype=np.float64) for c in numeric]
        widest = max((len(e) for e in self.edges), default=0)
        self._padded = np.full((len(numeric), widest), np.nan)  # NaN never compares ≥
        self._ones = np.ones(widest, dtype=np.float32)
        for j, e in enumerate(self.edges):
            self._padded[j, : len(e)] = e
        self.mean = np.array([c.mean for c in numeric], dtype=np.float64)
        std = np.array([c.std for c in numeric], dtype=np.float64)
        self.scale = np.where(std > 0, std, 1.0)
        sizes = np.array([len(e) + 2 for e in self.edges], dtype=np.intp)
        self.excess_offsets = _starts(sizes)
        self.n_excess = int(sizes.sum())
        self._anchors = (
            np.concatenate([bin_anchors(e) for e in self.edges]) if numeric else np.empty(0)
        )
        self._count_slots = self.bin_offsets[list(self.numeric_index)]
        self.width = self.n_bins + self.n_excess + 2 * self.n_numeric
        self._features_only = self._mask_outputs()

    def _mask_outputs(self) -> np.ndarray:
        """1 on the vector slots of feature columns, 0 on those of output columns."""
        n_feat = len(self.profile.features)
        mask = np.ones(self.width)
        for i in range(n_feat, len(self.columns)):
            start = int(self.bin_offsets[i])
            mask[start : start + int(self.bin_sizes[i])] = 0.0
        for j, i in enumerate(self.numeric_index):
            if i >= n_feat:
                start = self.n_bins + int(self.excess_offsets[j])
                mask[start : start + len(self.edges[j]) + 2] = 0.0
                mask[self.n_bins + self.n_excess + j :: self.n_numeric] = 0.0
        return mask

    def encode(
        self, batch: Any, outputs: Any = None, chunk: int | None = None
    ) -> list[tuple[int, np.ndarray]]:
        """``[(rows, state vector)]`` for ``batch``, split into chunks of at most ``chunk``
        rows (one chunk when ``chunk`` is None). Raises InvalidInputError for a batch it
        cannot read or outputs whose length differs from the batch's. Without ``outputs``
        the output columns stay untouched (unseen, not null)."""
        n = batch_length(batch)
        if n == 0:
            return []
        numeric, categorical = self._reader.read(batch, outputs, n)
        step = n if chunk is None else max(int(chunk), 1)
        parts = []
        for s in range(0, n, step):
            cats = [c[s : s + step] for c in categorical] if s or step < n else categorical
            vector = self._vector(numeric[s : s + step], cats)
            if outputs is None and self.profile.outputs:
                vector *= self._features_only
            parts.append((min(step, n - s), vector))
        return parts

    def _vector(self, x: np.ndarray, categorical: list[Sequence[Any]]) -> np.ndarray:
        """The state vector of these rows (layout in the module docstring)."""
        count_slots = []
        excess: np.ndarray = np.empty(0)
        moments: list[np.ndarray] = []
        if self.n_numeric:
            finite = np.isfinite(x)
            clean = bool(finite.all())
            if not clean:
                x = np.where(finite, x, self.mean)  # nulls: z = 0, excess in the null bin
            index = self._numeric_bins(x)
            if not clean:
                index[~finite] = NULL_BIN
            count_slots.append(index + self._count_slots)
            local = index + self.excess_offsets
            excess = np.bincount(
                local.ravel(),
                weights=np.abs(x - self._anchors[local]).ravel(),
                minlength=self.n_excess,
            )
            z = (x - self.mean) / self.scale
            moments = [z.sum(axis=0), np.einsum("ij,ij->j", z, z)]
        if categorical:
            pairs = zip(categorical, self._tables, strict=True)
            codes = [categorical_codes(_as_list(v), t) for v, t in pairs]
            count_slots.append(np.column_stack(codes) + self._categorical_offsets)
        slots = count_slots[0] if len(count_slots) == 1 else np.concatenate(count_slots, axis=1)
        counts = np.bincount(slots.ravel(), minlength=self.n_bins)
        return np.concatenate([counts, excess, *moments]).astype(np.float64, copy=False)

    def _numeric_bins(self, x: np.ndarray) -> np.ndarray:
        """Bin index of finite values (1 below, 2… interior, len(edges)+1 above)."""
        n = len(x)
        if n <= _MATMUL_MAX_ROWS:
            above = x[:, :, None] >= self._padded[None, :, :]  # NaN padding never counts
            if n <= _BROADCAST_MAX_ROWS:
                counted: np.ndarray = above.sum(axis=2)
                return counted + 1
            return (above.astype(np.float32) @ self._ones).astype(np.intp) + 1
        columns = np.ascontiguousarray(x.T)
        index = np.empty(columns.shape, dtype=np.intp)
        for j, edges in enumerate(self.edges):
            index[j] = np.searchsorted(edges, columns[j], side="right")
        return index.T + 1


def _starts(sizes: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)


def _as_list(values: Sequence[Any]) -> Sequence[Any]:
    return values.tolist() if isinstance(values, np.ndarray) else values
