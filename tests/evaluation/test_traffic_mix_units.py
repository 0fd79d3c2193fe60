"""Where units send several requests, the traffic mix is tested over units: a user who sends
handwritten formulas sends them again, so Pearson's test on the requests took a mix that only
the few users in the sample make for a shift."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from scipy import stats

from core.store.db import Database
from evaluation.clustered_shares import clustered_shift
from evaluation.divergence import divergence_report
from tests.evaluation.helpers import T0, add_candidate, add_experiment, apply, prediction

SLICES = ("handwritten/middle", "printed/middle", "screen/middle")
OFFLINE_N = {"handwritten/middle": 300, "printed/middle": 500, "screen/middle": 200}


def _store(db: Database, per_unit: np.ndarray) -> int:
    add_candidate(db, "ocr", {"overall": {"n": 1000, "exact_match": 0.9},
                              "slices": {s: {"n": n, "exact_match": 0.9}
                                         for s, n in OFFLINE_N.items()}})
    exp = add_experiment(db, arms=[
        {"name": "control", "candidate": "ocr", "weight": 1.0, "control": True}])
    batch = []
    for u, row in enumerate(per_unit.astype(int)):
        for j, n in enumerate(row):
            batch += [prediction(f"u{u}-{j}-{i}", experiment_id=exp, candidate="ocr",
                                 slice_=SLICES[j], unit_id=f"user-{u}",
                                 stages={"converter": {}}, at=T0 + timedelta(minutes=i))
                      for i in range(n)]
    apply(db, batch)
    return exp


def test_the_mix_is_tested_over_the_units_that_sent_it(db: Database) -> None:
    rng = np.random.default_rng(4)
    offline = np.array([OFFLINE_N[s] for s in SLICES], dtype=float) / 1000
    # Each user keeps mostly to one kind of input.
    per_unit = np.array([rng.multinomial(12, rng.dirichlet(offline * 0.8))
                         for _ in range(20)], dtype=float)
    exp = _store(db, per_unit)
    with db.session() as s:
        mix = divergence_report(s, exp)["traffic_mix"][0]
    expected = clustered_shift(offline, 1000, per_unit)
    assert expected is not None
    assert mix["analysis_unit"] == "unit" and mix["online_units"] == 20
    assert mix["chi_square"] == pytest.approx(expected.statistic, rel=1e-9)
    assert mix["p_value"] == pytest.approx(expected.p_value, rel=1e-9)
    pearson = stats.chi2_contingency(np.vstack([offline * 1000, per_unit.sum(axis=0)]),
                                     correction=False).pvalue
    assert pearson < mix["p_value"]  # the requests taken as independent: a smaller p


def test_one_request_per_unit_keeps_pearsons_test(db: Database) -> None:
    counts = np.array([40, 45, 15], dtype=float)
    per_unit = np.vstack([np.eye(3)[j] for j, n in enumerate(counts.astype(int))
                          for _ in range(n)])
    exp = _store(db, per_unit)
    with db.session() as s:
        mix = divergence_report(s, exp)["traffic_mix"][0]
    assert mix["analysis_unit"] == "prediction" and mix["online_units"] is None
    offline = np.array([OFFLINE_N[s] for s in SLICES], dtype=float)
    assert mix["p_value"] == pytest.approx(
        stats.chi2_contingency(np.vstack([offline, counts]), correction=False).pvalue,
        rel=1e-9)


def test_the_divergence_page_says_the_mix_was_tested_over_units(db: Database) -> None:
    from dashboards.pages import divergence as page
    from evaluation.divergence import divergence_with_stages

    rng = np.random.default_rng(4)
    offline = np.array([OFFLINE_N[s] for s in SLICES], dtype=float) / 1000
    exp = _store(db, np.array([rng.multinomial(12, rng.dirichlet(offline * 0.8))
                               for _ in range(20)], dtype=float))
    with db.session() as s:
        shown = str(page.body(divergence_with_stages(s, exp)))
    assert "tested over units (some unit sent several requests)" in shown
