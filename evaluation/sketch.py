"""Latency histograms as bytes, for the ``sketch`` column of the online aggregates.

A histogram over the default layout has about 900 buckets, and an hour of one slice fills a few
dozen, so only the non-empty buckets are written: a small header, then bucket indexes (uint32)
and counts (int64), little-endian. The layout travels in the header so that a histogram written
under another layout is refused instead of being merged into the wrong buckets.
"""

from __future__ import annotations

import struct

import numpy as np
from numpy.typing import ArrayLike

from evaluation.stats import HistogramLayout, LatencyHistogram

LAYOUT = HistogramLayout()
"""The layout every latency sketch uses: 0.01 ms to 1,000 s at 1 % relative error."""

_MAGIC = b"LH1"
_HEADER = struct.Struct("<3s3dI")


def encode(histogram: LatencyHistogram) -> bytes:
    """Sparse bytes of a histogram."""
    layout = histogram.layout
    index = np.flatnonzero(histogram.counts).astype("<u4")
    counts = histogram.counts[index].astype("<i8")
    header = _HEADER.pack(
        _MAGIC, layout.lowest, layout.highest, layout.relative_error, index.size
    )
    return header + index.tobytes() + counts.tobytes()


def decode(data: bytes | None, layout: HistogramLayout = LAYOUT) -> LatencyHistogram:
    """The histogram written by :func:`encode` (empty for ``None``)."""
    if not data:
        return LatencyHistogram.empty(layout)
    magic, lowest, highest, error, size = _HEADER.unpack_from(data)
    if magic != _MAGIC:
        raise ValueError("not a latency sketch")
    if HistogramLayout(lowest, highest, error) != layout:
        raise ValueError("the sketch was written under another histogram layout")
    start = _HEADER.size
    index = np.frombuffer(data, "<u4", size, start)
    counts = np.frombuffer(data, "<i8", size, start + 4 * size)
    dense = np.zeros(layout.n_buckets, dtype=np.int64)
    dense[index] = counts
    return LatencyHistogram(dense, layout)


def from_values(values: ArrayLike) -> LatencyHistogram:
    """A histogram of raw latencies (milliseconds) on the shared layout."""
    return LatencyHistogram.from_values(values, LAYOUT)


def merge(*sketches: bytes | None) -> bytes:
    """The sum of several encoded histograms, encoded."""
    total = LatencyHistogram.empty(LAYOUT)
    for data in sketches:
        total = total + decode(data)
    return encode(total)
