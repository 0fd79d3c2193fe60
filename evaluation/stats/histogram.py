"""A mergeable latency histogram with bounded relative error on its quantiles.

Latency percentiles (p50/p95/p99) cannot be merged from per-hour percentiles, and keeping every
row is what the aggregates are meant to avoid. A histogram over fixed, log-spaced bucket edges is a
sum like the other sufficient statistics: hourly histograms add bucket by bucket.

The edges grow by the factor ``gamma = (1 + a) / (1 - a)`` where ``a`` is the relative error, and a
bucket ``(lo, hi]`` reports the value ``2 * lo * hi / (lo + hi)``. Every value in the bucket is
then within ``a`` of the reported value, relative to itself (the construction of DDSketch, Masson,
Rim and Lee, VLDB 2019). The guarantee holds for values inside ``[lowest, highest]``; smaller values
are reported as ``lowest`` and larger ones as the last edge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from numpy.typing import ArrayLike


@dataclass(frozen=True)
class HistogramLayout:
    """Bucket edges shared by every histogram that is to be merged (units are the caller's)."""

    lowest: float = 0.01
    highest: float = 1_000_000.0
    relative_error: float = 0.01

    def __post_init__(self) -> None:
        if not 0 < self.lowest < self.highest or not math.isfinite(self.highest):
            raise ValueError("need 0 < lowest < highest < inf")
        if not 0 < self.relative_error < 1:
            raise ValueError("relative_error must be in (0, 1)")

    @property
    def gamma(self) -> float:
        """Ratio between consecutive edges."""
        return (1 + self.relative_error) / (1 - self.relative_error)

    @cached_property
    def edges(self) -> np.ndarray:
        """Edges ``lowest * gamma**k`` for k = 0..K, the last one at or above ``highest``."""
        steps = math.ceil(math.log(self.highest / self.lowest) / math.log(self.gamma))
        edges = self.lowest * self.gamma ** np.arange(steps + 1, dtype=np.float64)
        edges.flags.writeable = False
        return edges

    @property
    def n_buckets(self) -> int:
        """Underflow bucket, one bucket per pair of edges, overflow bucket."""
        return self.edges.size + 1

    @cached_property
    def representatives(self) -> np.ndarray:
        """The value each bucket reports (see the module docstring for why this one)."""
        lo, hi = self.edges[:-1], self.edges[1:]
        inner = 2.0 * lo * hi / (lo + hi)
        values = np.concatenate(([self.edges[0]], inner, [self.edges[-1]]))
        values.flags.writeable = False
        return values

    def bucket_of(self, values: ArrayLike) -> np.ndarray:
        """Bucket index of each value: 0 for ``<= lowest``, k for ``(edge[k-1], edge[k]]``."""
        data = np.asarray(values, dtype=np.float64)
        if np.isnan(data).any():
            raise ValueError("values must not be NaN")
        return np.searchsorted(self.edges, data, side="left")


@dataclass(frozen=True, eq=False)
class LatencyHistogram:
    """Counts per bucket of a :class:`HistogramLayout`; add two to merge them."""

    counts: np.ndarray
    layout: HistogramLayout = field(default_factory=HistogramLayout)

    def __post_init__(self) -> None:
        counts = np.array(self.counts, dtype=np.int64)
        if counts.shape != (self.layout.n_buckets,):
            raise ValueError(
                f"counts must have {self.layout.n_buckets} buckets, got shape {counts.shape}"
            )
        if (counts < 0).any():
            raise ValueError("counts cannot be negative")
        counts.flags.writeable = False
        object.__setattr__(self, "counts", counts)

    @classmethod
    def empty(cls, layout: HistogramLayout | None = None) -> LatencyHistogram:
        """A histogram with no observations."""
        layout = layout if layout is not None else HistogramLayout()
        return cls(np.zeros(layout.n_buckets, dtype=np.int64), layout)

    @classmethod
    def from_values(
        cls, values: ArrayLike, layout: HistogramLayout | None = None
    ) -> LatencyHistogram:
        """Bucket raw observations."""
        layout = layout if layout is not None else HistogramLayout()
        buckets = layout.bucket_of(np.ravel(values))
        return cls(np.bincount(buckets, minlength=layout.n_buckets), layout)

    @property
    def count(self) -> int:
        """Number of observations."""
        return int(self.counts.sum())

    def quantile(self, q: float | ArrayLike) -> float | np.ndarray:
        """Estimate of the q-quantile, within ``relative_error`` of the exact sample quantile.

        The convention is numpy's default (``method="linear"``), the one the offline tests and
        the guardrails use: between the order statistics at ``floor(h)`` and ``ceil(h)``,
        ``h = q * (n - 1)``, interpolated. Each is a bucket's representative, within the
        relative error, so their weighted mean is too. NaN for an empty histogram.
        """
        qs = np.asarray(q, dtype=np.float64)
        if ((qs < 0) | (qs > 1) | np.isnan(qs)).any():
            raise ValueError("q must be in [0, 1]")
        total = self.count
        if total == 0:
            out = np.full(qs.shape, np.nan)
        else:
            h = qs * (total - 1)
            cumulative = np.cumsum(self.counts)
            low, high = (self.layout.representatives[np.searchsorted(cumulative, rank, "right")]
                         for rank in (np.floor(h), np.ceil(h)))
            out = low + (h - np.floor(h)) * (high - low)
        return float(out) if out.ndim == 0 else out

    def __add__(self, other: object) -> LatencyHistogram:
        if not isinstance(other, LatencyHistogram):
            return NotImplemented
        if other.layout != self.layout:
            raise ValueError("histograms with different layouts cannot be merged")
        return LatencyHistogram(self.counts + other.counts, self.layout)

    def __radd__(self, other: object) -> LatencyHistogram:
        if isinstance(other, int) and other == 0:
            return self
        return NotImplemented

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LatencyHistogram):
            return NotImplemented
        return self.layout == other.layout and bool(np.array_equal(self.counts, other.counts))

    __hash__ = None  # type: ignore[assignment]
