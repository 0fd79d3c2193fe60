"""The results' per-arm prediction shift (``label_metrics``) is tested over each arm's own
units where they send several answers, as the divergence report's per-version one is: taken
per answer, an A/A comparison of units whose class leanings vary flags a shift in most runs
(tests/evaluation/test_prediction_shift_units.py shows the level of both)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from scipy import stats

from core.store.db import Database
from evaluation import unit_class_counts
from evaluation.clustered_shares import clustered_shift
from evaluation.results import experiment_results
from tests.evaluation.helpers import T0, add_candidate, add_experiment, apply, prediction

CLASSES = ("attack", "defend", "idle", "move")
OFFLINE = np.array([0.2, 0.2, 0.3, 0.3])
ON_MAP_A = np.array([0.1, 0.3, 0.3, 0.3])
MAPS = ("map-a", "map-b")


def _shares(shares: np.ndarray) -> dict[str, float]:
    return dict(zip(CLASSES, shares.tolist(), strict=True))


def _answers(rng: np.random.Generator, k: int) -> np.ndarray:
    """K units of 15 answers each, every unit keeping to its own classes (Dirichlet 1.0)."""
    return np.array([rng.multinomial(15, rng.dirichlet(OFFLINE)) for _ in range(k)], float)


def _events(exp: int, arm: str | None, units: np.ndarray, prefix: str,
            shadow: bool = False) -> list[dict[str, Any]]:
    """Each unit's answers; the first half of the units play map-a, the rest map-b."""
    out = []
    for u, row in enumerate(units):
        answers = [c for c, n in zip(CLASSES, row.astype(int), strict=True) for _ in range(n)]
        for i, output in enumerate(answers):
            out.append(prediction(f"{prefix}{u}-{i}", experiment_id=exp, arm=arm, candidate="bot",
                                  shadow=shadow, output=output, unit_id=f"{prefix}player-{u}",
                                  slice_=MAPS[u >= len(units) // 2],
                                  at=T0 + timedelta(minutes=i)))
    return out


def _shift(results: dict[str, Any], variant: str, slice_: str = "all") -> dict[str, Any]:
    return results["label_metrics"][variant]["slices"][slice_]["prediction_shift"]


def test_each_arm_and_shadow_is_tested_over_its_own_units(db: Database) -> None:
    add_candidate(db, "bot", {"overall": {"n": 2000, "exact_match": 0.9},
                              "label_shares": _shares(OFFLINE),
                              "slices": {"map-a": {"n": 1000,
                                                   "label_shares": _shares(ON_MAP_A)}}})
    exp = add_experiment(db, arms=[
        {"name": "control", "candidate": "bot", "weight": 0.5, "control": True},
        {"name": "treatment", "candidate": "bot", "weight": 0.5, "control": False}],
        shadows=[{"candidate": "bot"}])
    rng = np.random.default_rng(4)
    control, treatment = _answers(rng, 12), _answers(rng, 10)
    # The shadow answers the control's requests as the control did: its units are the same.
    apply(db, _events(exp, "control", control, "c") + _events(exp, "treatment", treatment, "t")
          + _events(exp, None, control, "s", shadow=True))
    with db.session() as s:
        results = experiment_results(s, exp)
    for variant, units in (("control", control), ("treatment", treatment),
                           ("shadow:bot", control)):
        shift = _shift(results, variant)
        expected = clustered_shift(OFFLINE, 2000, units)
        assert expected is not None
        assert shift["analysis_unit"] == "unit" and shift["online_units"] == len(units)
        assert shift["chi_square"] == pytest.approx(expected.statistic, rel=1e-9)
        assert shift["p_value"] == pytest.approx(expected.p_value, rel=1e-9)
        assert "unit_note" not in shift
    # A slice's shift is over the units that played it, against the slice's offline shares.
    on_a = _shift(results, "control", "map-a")
    expected = clustered_shift(ON_MAP_A, 1000, control[:6])
    assert expected is not None and on_a["online_units"] == 6
    assert on_a["p_value"] == pytest.approx(expected.p_value, rel=1e-9)
    # Past the live read's limit the shift stays per answer (Pearson's), and says why.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(unit_class_counts, "UNIT_CLASS_LIMIT", 100)
        with db.session() as s:
            per_answer = _shift(experiment_results(s, exp), "treatment")
    assert per_answer["analysis_unit"] == "prediction"
    assert "tested per answer" in per_answer["unit_note"]
    table = np.vstack([OFFLINE * 2000, treatment.sum(axis=0)])
    assert per_answer["p_value"] == pytest.approx(
        stats.chi2_contingency(table, correction=False).pvalue, rel=1e-9)
