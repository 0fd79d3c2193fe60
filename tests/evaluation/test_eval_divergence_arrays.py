"""The raw-array divergence path: the same report as the store-based one on the same data, and
its statistics against scipy and statsmodels computed straight from the rows."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
from statsmodels.stats.proportion import proportion_confint
from statsmodels.stats.proportion import test_proportions_2indep as sm_two_proportions

from core.store.db import Database
from evaluation.divergence import divergence_report
from evaluation.divergence_arrays import PredictionArrays, divergence_from_arrays, offline_results
from tests.evaluation.helpers import add_candidate, add_experiment, apply, correction, prediction

LABELS = ("idle", "move", "attack", "jump")
SLICES = ("arena/ranked", "arena/casual", "arena/training")


def _side(rng: np.random.Generator, n: int, mix: list[float], truth_p: list[float],
          accuracy: list[float], idle_bias: float, corrected: float | None) -> PredictionArrays:
    """Predictions of a classifier that answers 'idle' instead of the truth with ``idle_bias``;
    ``corrected`` (online) is the chance a wrong answer gets a correction, ``None`` (reference)
    a truth on every row."""
    slice_ = rng.choice(len(SLICES), n, p=mix)
    truth = rng.choice(len(LABELS), n, p=truth_p)
    right = rng.random(n) < np.asarray(accuracy)[slice_]
    output = np.where(right, truth, rng.integers(0, len(LABELS), n))
    output = np.where(rng.random(n) < idle_bias, 0, output)
    confidence = np.where(right, rng.uniform(0.6, 1.0, n), rng.uniform(0.2, 0.9, n))
    latency = rng.lognormal(2.5, 0.4, n)
    if corrected is not None:
        known = (output != truth) & (rng.random(n) < corrected)
        known |= rng.random(n) < 0.03  # a few corrections that repeat a right output
        truth = np.where(known, truth, -1)
        confidence[rng.random(n) < 0.05] = np.nan
        latency[rng.random(n) < 0.05] = np.nan
    return PredictionArrays.from_truth(slice_.astype(np.int16), output.astype(np.int16),
                                       truth.astype(np.int16), confidence, latency)


def _pair(seed: int = 3, n_ref: int = 900, n_on: int = 700) -> tuple[PredictionArrays,
                                                                      PredictionArrays]:
    rng = np.random.default_rng(seed)
    reference = _side(rng, n_ref, [0.6, 0.3, 0.1], [0.5, 0.3, 0.15, 0.05], [0.97, 0.95, 0.9],
                      0.0, None)
    online = _side(rng, n_on, [0.25, 0.65, 0.1], [0.3, 0.35, 0.3, 0.05], [0.9, 0.8, 0.9],
                   0.35, 0.9)
    return reference, online


def _same(ours: Any, theirs: Any, where: str = "") -> None:
    """Equal structures, floats to 1e-9 relative."""
    if isinstance(ours, dict):
        assert set(ours) == set(theirs), where
        for k in ours:
            _same(ours[k], theirs[k], f"{where}.{k}")
    elif isinstance(ours, list | tuple):
        assert len(ours) == len(theirs), where
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            _same(a, b, f"{where}[{i}]")
    elif isinstance(ours, float) and isinstance(theirs, float | int):
        assert ours == pytest.approx(theirs, rel=1e-9, abs=1e-12, nan_ok=True), where
    else:
        assert ours == theirs, where


def test_the_array_report_equals_the_store_report(db: Database) -> None:
    reference, online = _pair()
    add_candidate(db, "bot", offline_results(reference, SLICES, LABELS))
    exp = add_experiment(db, name="bots", arms=[
        {"name": "control", "candidate": "bot", "weight": 1.0, "control": True}])
    batch = []
    for i in range(len(online)):
        pid = f"p-{i}"
        conf, lat = float(online.confidence[i]), float(online.latency_ms[i])
        batch.append(prediction(pid, experiment_id=exp, arm="control", candidate="bot",
                                slice_=SLICES[online.slice[i]], output=LABELS[online.output[i]],
                                confidence=None if math.isnan(conf) else conf,
                                latency_ms=None if math.isnan(lat) else lat))
        if online.truth[i] >= 0:
            batch.append(correction(pid, LABELS[online.truth[i]]))
    apply(db, batch)
    with db.session() as s:
        store = divergence_report(s, exp)
    ours = divergence_from_arrays(reference, online, slices=SLICES, labels=LABELS,
                                  candidate="bot")
    for section in ("slices", "traffic_mix", "prediction_shift", "findings"):
        _same(ours[section], store[section], section)
    kinds = {f["kind"] for f in ours["findings"]}
    assert {"prediction_shift", "traffic_mix", "accuracy_gap"} <= kinds  # every path is compared
    assert ours["findings"][0]["label"] == "idle"


def test_statistics_match_scipy_and_statsmodels_on_the_rows() -> None:
    reference, online = _pair(seed=5, n_ref=5000, n_on=4000)
    report = divergence_from_arrays(reference, online, slices=SLICES, labels=LABELS,
                                    tolerance=0.03)
    n_s = len(SLICES)
    ref_n = np.array([(reference.slice == s).sum() for s in range(n_s)])
    on_n = np.array([(online.slice == s).sum() for s in range(n_s)])

    mix = report["traffic_mix"][0]
    ref_chi = stats.chi2_contingency(np.vstack([ref_n, on_n]), correction=False)
    assert (mix["chi_square"], mix["p_value"]) == pytest.approx((ref_chi.statistic,
                                                                 ref_chi.pvalue), rel=1e-9)
    p, q = ref_n / ref_n.sum(), on_n / on_n.sum()
    assert mix["psi"] == pytest.approx(float(np.sum((q - p) * np.log(q / p))), rel=1e-9)

    rows = {r["slice"]: r for r in report["slices"]}
    for s, name in enumerate(SLICES):
        known = (online.slice == s) & (online.correct >= 0)
        hits = int(on_n[s] - known.sum())  # every known truth online counts as a correction
        off_hits = int(((reference.slice == s) & (reference.correct == 1)).sum())
        ref = sm_two_proportions(hits, int(on_n[s]), off_hits, int(ref_n[s]), value=-0.03,
                                 method="wald", compare="diff", alternative="smaller")
        assert rows[name]["z"] == pytest.approx(ref.statistic, rel=1e-9)
        assert rows[name]["p_value"] == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-300)
        ci = proportion_confint(hits, int(on_n[s]), method="wilson")
        assert rows[name]["online"]["accuracy_ci"] == pytest.approx(list(ci), rel=1e-9)

    shift = report["prediction_shift"][0]
    wrong = online.correct == 0
    for row in shift["online_labels"]:
        k = LABELS.index(row["label"])
        b = int((wrong & (online.output == k)).sum())
        c = int((wrong & (online.truth == k)).sum())
        ref_p = sm_mcnemar([[0, b], [c, 0]], exact=False, correction=True).pvalue
        assert row["p_value"] == pytest.approx(ref_p, rel=1e-9)
    ref_labels = np.bincount(reference.truth, minlength=len(LABELS))
    outputs = np.bincount(online.output, minlength=len(LABELS))
    off = shift["offline_labels"]
    ref_chi = stats.chi2_contingency(np.vstack([ref_labels, outputs]), correction=False)
    assert (off["chi_square"], off["p_value"]) == pytest.approx(
        (ref_chi.statistic, ref_chi.pvalue), rel=1e-9)
    assert off["top_label"] == "idle"
    assert off["excess"] == pytest.approx(outputs[0] / outputs.sum()
                                          - ref_labels[0] / ref_labels.sum())

    conf = report["distributions"]["confidence"]
    edges = np.linspace(0, 1, 11)
    ref_hist = np.histogram(reference.confidence, edges)[0]
    on_hist = np.histogram(online.confidence[np.isfinite(online.confidence)], edges)[0]
    table = np.vstack([ref_hist, on_hist])
    ref_chi = stats.chi2_contingency(table[:, table.sum(axis=0) > 0], correction=False)
    assert conf["chi_square"] == pytest.approx(ref_chi.statistic, rel=1e-9)
    lat = report["distributions"]["latency_ms"]
    assert sum(lat["reference_shares"]) == pytest.approx(1.0)
    assert len(lat["bin_edges"]) == len(lat["reference_shares"]) - 1
    inner = np.quantile(reference.latency_ms, np.arange(1, 10) / 10)
    assert lat["bin_edges"] == pytest.approx(inner, rel=0.03)  # deciles off a 1 % sketch
    assert not lat["shifted"]


def test_idle_bot_at_scale_without_online_truths_names_idle() -> None:
    """200k rows a side, online truths unknown: the output shift against the reference alone
    still names the over-predicted label first."""
    rng = np.random.default_rng(11)
    reference, online = (_side(rng, 200_000, [0.5, 0.4, 0.1], [0.4, 0.3, 0.25, 0.05],
                               [0.99, 0.99, 0.99], bias, corrected)
                         for bias, corrected in ((0.0, None), (0.6, 0.9)))
    online = PredictionArrays(online.slice, online.output, online.correct, online.confidence,
                              online.latency_ms)
    report = divergence_from_arrays(reference, online, slices=SLICES, labels=LABELS,
                                    candidate="idle-bot")
    shift = report["prediction_shift"][0]
    assert shift["online_labels"] == []
    assert shift["offline_labels"]["shifted"]
    top = report["findings"][0]
    assert (top["kind"], top["label"]) == ("prediction_shift", "idle")
    assert f"{shift['output_shares']['idle']:.0%}" in top["explanation"]
    assert report["slices"][0]["online"]["token_edit_distance"] is None


def test_bad_arrays_are_refused() -> None:
    reference, online = _pair(n_ref=50, n_on=40)
    kwargs: dict[str, Any] = {"slices": SLICES, "labels": LABELS}
    short = PredictionArrays(online.slice[:-1], online.output, online.correct,
                             online.confidence, online.latency_ms)
    with pytest.raises(ValueError, match="one-dimensional"):
        divergence_from_arrays(reference, short, **kwargs)
    with pytest.raises(ValueError, match="output codes"):
        divergence_from_arrays(reference, online, slices=SLICES, labels=LABELS[:2])
    flipped = PredictionArrays(online.slice, online.output, np.where(online.correct >= 0,
                               1 - online.correct, -1), online.confidence, online.latency_ms,
                               online.truth)
    with pytest.raises(ValueError, match="contradicts"):
        divergence_from_arrays(reference, flipped, **kwargs)
    with pytest.raises(ValueError, match="truth on every row"):
        divergence_from_arrays(online, online, **kwargs)
    with pytest.raises(ValueError, match="every slice"):
        divergence_from_arrays(reference, online, slices=("all", "b", "c"), labels=LABELS)


def test_lists_and_bool_correct_are_accepted() -> None:
    reference = PredictionArrays([0, 0, 1, 1], [0, 1, 0, 1], [True, True, False, True],
                                 [0.9, 0.8, 0.5, 0.7], [10.0, 12.0, 20.0, 11.0])
    online = PredictionArrays([0, 1, 1, 1], [0, 0, 0, 1], [-1, 0, -1, -1],
                              [0.9, 0.4, 0.5, np.nan], [10.0, np.nan, 30.0, 9.0])
    report = divergence_from_arrays(reference, online, slices=("a/x", "a/y"),
                                    labels=("p", "q"))
    rows = {r["slice"]: r for r in report["slices"]}
    assert rows["a/y"]["online"]["accuracy_bound"] == pytest.approx(2 / 3)
    assert rows["a/y"]["offline"]["exact_match"] == pytest.approx(0.5)
    assert report["traffic_mix"][0]["online_shares"] == pytest.approx({"a/x": 0.25,
                                                                       "a/y": 0.75})
