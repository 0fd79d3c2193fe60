"""The divergence report over raw prediction arrays: a reference set (an offline test's
predictions) against online predictions, without a store.

The store-based report (:func:`evaluation.divergence.divergence_report`) reads summed aggregates;
this path builds the same sums from integer-coded arrays with ``np.bincount`` (one pass per
statistic, a few milliseconds per million rows), turns them into the offline results and online
:class:`~evaluation.online.Cell` objects that report reads, and hands them to the same functions
(:func:`~evaluation.divergence.candidate_divergence`, :func:`~evaluation.findings.rank_findings`),
so both paths give the same figures and findings on the same data.

Codes mean what the store means:

* ``correct`` is ``1`` (truth known, output right), ``0`` (truth known, output wrong) or ``-1``
  (no truth). Online, every known truth counts as a correction, as in the store: the accuracy
  bound is ``1 - known / n``. The reference must have a truth on every row (an offline test).
* ``truth`` (optional) is the true label's code where the truth is known, ``-1`` elsewhere. It
  is what the per-class McNemar test (the estimated online label shares) and the token edit
  distance need; without it online, ``online_labels`` is empty and the output shift is tested
  against the reference alone. The reference's label shares are its truths' shares when it has
  truths, else its outputs' shares (plain prediction drift).

Beyond the store report, ``distributions`` tests the two numeric columns, confidence (ten
equal-width bins) and latency (the reference's deciles, read off its latency sketch), with the
chi-square test of homogeneity and PSI. They are reported, not ranked: the findings are the
store report's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.latex import token_edit_distance
from evaluation import aggregation as agg
from evaluation import sketch
from evaluation.divergence import PSI_SHIFT, candidate_divergence, homogeneity, psi
from evaluation.findings import rank_findings
from evaluation.online import ALL, Cell
from evaluation.stats import LatencyHistogram

CONFIDENCE_BINS = 10
LATENCY_BINS = 10
_DENSE_PAIRS = 1 << 20  # label pairs counted with np.bincount up to this many, else np.unique


@dataclass(frozen=True, eq=False)
class PredictionArrays:
    """One candidate's predictions as parallel arrays (codes index the report's ``slices`` and
    ``labels`` names); NaN confidence or latency means none was recorded."""

    slice: np.ndarray
    output: np.ndarray
    correct: np.ndarray
    confidence: np.ndarray
    latency_ms: np.ndarray
    truth: np.ndarray | None = None

    def __post_init__(self) -> None:
        for name in ("slice", "output", "correct", "confidence", "latency_ms", "truth"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, np.asarray(value))

    @classmethod
    def from_truth(cls, slice_: np.ndarray, output: np.ndarray, truth: np.ndarray,
                   confidence: np.ndarray, latency_ms: np.ndarray) -> PredictionArrays:
        """Arrays whose ``correct`` is derived from the truths (``-1`` where unknown)."""
        truth = np.asarray(truth)
        correct = np.where(truth < 0, -1, truth == output).astype(np.int8)
        return cls(slice_, output, correct, confidence, latency_ms, truth)

    def __len__(self) -> int:
        return len(self.slice)

    def check(self, n_slices: int, n_labels: int) -> None:
        """Refuse what would silently give a wrong report: ragged arrays, codes out of range,
        truths that contradict ``correct``."""
        n = len(self.slice)
        named = {"slice": self.slice, "output": self.output, "correct": self.correct,
                 "confidence": self.confidence, "latency_ms": self.latency_ms}
        if self.truth is not None:
            named["truth"] = self.truth
        for name, a in named.items():
            if np.ndim(a) != 1 or len(a) != n:
                raise ValueError(f"{name} must be one-dimensional with {n} rows")
        for name, a, hi in (("slice", self.slice, n_slices), ("output", self.output, n_labels)):
            if n and (not np.issubdtype(a.dtype, np.integer) or a.min() < 0 or a.max() >= hi):
                raise ValueError(f"{name} codes must be integers in [0, {hi})")
        correct = self.correct
        if n and (correct.min() < -1 or correct.max() > 1):
            raise ValueError("correct must be 1, 0 or -1 (truth unknown)")
        if self.truth is not None and n:
            truth = self.truth
            if truth.max() >= n_labels or truth.min() < -1:
                raise ValueError(f"truth codes must be in [-1, {n_labels})")
            known = truth >= 0
            if not np.array_equal(known, correct >= 0) or not np.array_equal(
                    correct[known] == 1, truth[known] == self.output[known]):
                raise ValueError("truth contradicts correct")


@dataclass
class _Tally:
    """The sums one side contributes, per slice (and per label pair for wrong answers)."""

    n: np.ndarray  # predictions per slice
    known: np.ndarray  # with a truth
    right: np.ndarray  # with a truth equal to the output
    outputs: np.ndarray  # predictions per output label
    truths: np.ndarray | None  # known truths per label
    pairs: tuple[np.ndarray, np.ndarray] | None  # wrong answers: output * L + truth, counts
    distance: np.ndarray | None  # [sum, sum of squares] token edit distance per slice, 2 x S
    latency: np.ndarray  # latency sketch counts per slice, S x buckets
    confidence_bins: np.ndarray  # equal-width confidence bins, all slices


def _tally(a: PredictionArrays, n_slices: int, labels: Sequence[str],
           distances: dict[int, float]) -> _Tally:
    """All of one side's sums, each one ``np.bincount`` over the rows."""
    n_labels = len(labels)
    slice_ = np.asarray(a.slice, dtype=np.intp)
    correct = np.asarray(a.correct, dtype=np.int8)
    key = slice_ * 3
    key += correct
    key += 1
    by_state = np.bincount(key, minlength=3 * n_slices).reshape(n_slices, 3)  # -1, 0, 1
    del key
    n = by_state.sum(axis=1)
    outputs = np.bincount(a.output, minlength=n_labels)
    truths = pairs = distance = None
    if a.truth is not None:
        truth = np.asarray(a.truth)
        truths = np.bincount(truth[truth >= 0], minlength=n_labels)
        wrong = correct == 0
        pair = np.asarray(a.output, dtype=np.intp)[wrong] * n_labels + truth[wrong]
        if n_labels * n_labels <= _DENSE_PAIRS:
            dense = np.bincount(pair, minlength=n_labels * n_labels)
            keys = np.flatnonzero(dense)
            pairs, inverse = (keys, dense[keys]), None
        else:
            keys, inverse, counts = np.unique(pair, return_inverse=True, return_counts=True)
            pairs = (keys, counts)
        for k in keys.tolist():
            if k not in distances:
                distances[k] = float(token_edit_distance(labels[k // n_labels],
                                                         labels[k % n_labels]))
        dist = np.array([distances[k] for k in keys.tolist()], dtype=np.float64)
        if inverse is None:
            table = np.zeros(n_labels * n_labels)
            table[keys] = dist
            d = table[pair]
        else:
            d = dist[inverse]
        wrong_slice = slice_[wrong]
        distance = np.vstack([np.bincount(wrong_slice, weights=d, minlength=n_slices),
                              np.bincount(wrong_slice, weights=d * d, minlength=n_slices)])
    layout = sketch.LAYOUT
    latency = np.asarray(a.latency_ms, dtype=np.float64)
    finite = np.isfinite(latency)
    lat_slice = slice_
    if not finite.all():
        latency, lat_slice = latency[finite], slice_[finite]
    bucket = layout.bucket_of(latency)
    bucket += lat_slice * layout.n_buckets
    hist = np.bincount(bucket, minlength=n_slices * layout.n_buckets)
    del bucket
    confidence = np.asarray(a.confidence, dtype=np.float64)
    confidence = confidence[np.isfinite(confidence)]
    conf_bin = (confidence * CONFIDENCE_BINS).astype(np.intp)
    np.clip(conf_bin, 0, CONFIDENCE_BINS - 1, out=conf_bin)
    return _Tally(n=n, known=by_state[:, 1:].sum(axis=1), right=by_state[:, 2], outputs=outputs,
                  truths=truths, pairs=pairs, distance=distance,
                  latency=hist.reshape(n_slices, layout.n_buckets),
                  confidence_bins=np.bincount(conf_bin, minlength=CONFIDENCE_BINS))


def _quantiles(counts: np.ndarray) -> tuple[float | None, float | None]:
    h = LatencyHistogram(counts, sketch.LAYOUT)
    if not h.count:
        return None, None
    p50, p99 = h.quantile([0.5, 0.99])
    return float(p50), float(p99)


def _offline_figures(n: int, right: float, latency: np.ndarray,
                     distance: float | None) -> dict[str, Any]:
    p50, p99 = _quantiles(latency)
    return {"n": n, "exact_match": right / n if n else None,
            "token_edit_distance": distance / n if distance is not None and n else None,
            "latency_p50_ms": p50, "latency_p99_ms": p99}


def _check_reference(reference: PredictionArrays, slices: Sequence[str],
                     labels: Sequence[str]) -> None:
    reference.check(len(slices), len(labels))
    if len(reference) and reference.correct.min() < 0:
        raise ValueError("the reference needs a truth on every row (an offline test)")


def offline_results(reference: PredictionArrays, slices: Sequence[str],
                    labels: Sequence[str]) -> dict[str, Any]:
    """A candidate's ``offline_results`` (as the registry stores them) from its offline test's
    raw predictions: what the store-based report compares online traffic with."""
    _check_reference(reference, slices, labels)
    return _offline_from(_tally(reference, len(slices), labels, {}), slices, labels)


def _offline_from(t: _Tally, slices: Sequence[str], labels: Sequence[str]) -> dict[str, Any]:
    present = [i for i in range(len(slices)) if t.n[i]]
    shares = t.truths if t.truths is not None else t.outputs
    total = shares.sum()
    d = t.distance
    overall = _offline_figures(int(t.n.sum()), float(t.right.sum()), t.latency.sum(axis=0),
                               None if d is None else float(d[0].sum()))
    per_slice = {slices[i]: _offline_figures(int(t.n[i]), float(t.right[i]), t.latency[i],
                                             None if d is None else float(d[0, i]))
                 for i in present}
    return {"overall": overall, "slices": per_slice,
            "mix_slices": [slices[i] for i in present],
            "label_shares": {labels[k]: float(shares[k] / total) for k in np.flatnonzero(shares)}}


def _cell(n: float, known: float, right: float, latency: np.ndarray,
          distance: np.ndarray | None) -> Cell:
    cell = Cell(latency=LatencyHistogram(latency, sketch.LAYOUT))
    cell.add(agg.PREDICTIONS, "", (n, n, n))
    cell.add(agg.ERRORS, "", (n, 0.0, 0.0))
    cell.add(agg.CORRECTED, "", (known, known, known))
    cell.add(agg.EXACT_MATCH, "", (known, right, right))
    if distance is not None:
        cell.add(agg.TOKEN_EDIT_DISTANCE, "", (known, distance[0], distance[1]))
    return cell


def _online_cells(t: _Tally, slices: Sequence[str], labels: Sequence[str]) -> dict[str, Cell]:
    """The online cells the store would load: one per slice with predictions, plus ``all``
    carrying the class counts (the only cell the report reads them from)."""
    cells = {}
    for i in np.flatnonzero(t.n):
        cells[slices[i]] = _cell(float(t.n[i]), float(t.known[i]), float(t.right[i]),
                                 t.latency[i], None if t.distance is None else t.distance[:, i])
    distance = None if t.distance is None else t.distance.sum(axis=1)
    total = _cell(float(t.n.sum()), float(t.known.sum()), float(t.right.sum()),
                  t.latency.sum(axis=0), distance)
    for k in np.flatnonzero(t.outputs):
        c = float(t.outputs[k])
        total.add(agg.OUTPUT, labels[k], (c, c, c))
    if t.pairs is not None:
        keys, counts = t.pairs
        n_labels = len(labels)
        by_output = np.bincount(keys // n_labels, weights=counts, minlength=n_labels)
        by_truth = np.bincount(keys % n_labels, weights=counts, minlength=n_labels)
        for metric, counts in ((agg.CORRECTED_OUTPUT, by_output), (agg.TRUTH, by_truth)):
            for k in np.flatnonzero(counts):
                c = float(counts[k])
                total.add(metric, labels[k], (c, c, c))
    cells[ALL] = total
    return cells


def _shift(reference: np.ndarray, online: np.ndarray, alpha: float,
           edges: list[float]) -> dict[str, Any]:
    chi2, p = homogeneity(reference, online)
    value = psi(reference, online) if reference.sum() and online.sum() else math.nan
    return {"bin_edges": edges,
            "reference_shares": (reference / max(reference.sum(), 1)).tolist(),
            "online_shares": (online / max(online.sum(), 1)).tolist(),
            "chi_square": None if math.isnan(chi2) else chi2,
            "p_value": None if math.isnan(p) else p,
            "psi": None if math.isnan(value) else value,
            "shifted": bool(not math.isnan(p) and p < alpha and value >= PSI_SHIFT)}


def _distributions(ref: _Tally, on: _Tally, alpha: float) -> dict[str, Any]:
    """Confidence and latency shifts: the numeric columns a drift tool would also test."""
    layout = sketch.LAYOUT
    r_lat, o_lat = ref.latency.sum(axis=0), on.latency.sum(axis=0)
    # Reference deciles off its sketch: each bucket goes to the decile its first count falls in.
    before = np.cumsum(r_lat) - r_lat
    decile = np.minimum(before * LATENCY_BINS // max(int(r_lat.sum()), 1), LATENCY_BINS - 1)
    r_bins = np.bincount(decile, weights=r_lat, minlength=LATENCY_BINS)
    o_bins = np.bincount(decile, weights=o_lat, minlength=LATENCY_BINS)
    # A bucket heavier than a decile swallows the next ones: keep the deciles that start somewhere.
    starts = np.flatnonzero(np.diff(decile, prepend=-1))
    present = decile[starts]
    edges = [float(layout.edges[b - 1]) for b in starts[1:]]
    conf_edges = (np.arange(1, CONFIDENCE_BINS) / CONFIDENCE_BINS).tolist()
    return {"confidence": _shift(ref.confidence_bins, on.confidence_bins, alpha, conf_edges),
            "latency_ms": _shift(r_bins[present], o_bins[present], alpha, edges)}


def divergence_from_arrays(reference: PredictionArrays, online: PredictionArrays, *,
                           slices: Sequence[str], labels: Sequence[str],
                           candidate: str = "candidate", alpha: float = 0.05,
                           tolerance: float = 0.02) -> dict[str, Any]:
    """The divergence report of one candidate, reference (offline test) against online
    predictions, laid out as the store-based report, plus ``distributions``."""
    if ALL in slices:
        raise ValueError(f"{ALL!r} is the report's name for every slice together")
    _check_reference(reference, slices, labels)
    online.check(len(slices), len(labels))
    distances: dict[int, float] = {}
    ref = _tally(reference, len(slices), labels, distances)
    on = _tally(online, len(slices), labels, distances)
    report: dict[str, Any] = {"candidate": candidate, "alpha": alpha, "tolerance": tolerance,
                              "slices": [], "traffic_mix": [], "prediction_shift": []}
    if len(online):
        rows, mix, shift = candidate_divergence(candidate, _offline_from(ref, slices, labels),
                                                _online_cells(on, slices, labels), alpha,
                                                tolerance)
        report["slices"] = rows
        if mix is not None:
            report["traffic_mix"].append(mix)
        if shift is not None:
            if online.truth is None:  # no truths: the online label shares cannot be estimated
                shift["online_labels"] = []
            report["prediction_shift"].append(shift)
    report["distributions"] = _distributions(ref, on, alpha)
    report["findings"] = rank_findings(report["slices"], report["traffic_mix"],
                                       report["prediction_shift"], alpha)
    return report
