"""A share's difference interval stays in [-1, 1] (and its relative interval at -100 % or
above): Welch's t on a handful of per-unit shares once gave exact match [-2.04, 0.82]."""

from __future__ import annotations

import math

from core.store.db import Database
from evaluation.results import experiment_results
from evaluation.stats.share_bounds import bound_share_intervals
from tests.evaluation.helpers import add_experiment, apply, correction, prediction

# Per unit, whether each of its answers was right: three control units, two treatment units.
UNITS = {("control", "cand-a"): [("c1", [1, 1, 1]), ("c2", [1, 1]), ("c3", [1, 0])],
         ("treatment", "cand-b"): [("t1", [0, 0]), ("t2", [1, 0])]}


def test_exact_match_on_a_few_units_stays_within_what_a_share_can_be(db: Database) -> None:
    exp = add_experiment(db)
    batch, k = [], 0
    for (arm, candidate), units in UNITS.items():
        for unit, rights in units:
            for right in rights:
                k += 1
                batch += [prediction(f"p{k}", arm=arm, candidate=candidate, unit_id=unit),
                          correction(f"p{k}", "x^{2}" if right else "y^{2}")]
    apply(db, batch)
    with db.session() as s:
        out = experiment_results(s, exp)
    (record,) = [r for r in out["comparisons"]
                 if r["metric"] == "exact_match" and r["slice"] == "all"]
    assert record["analysis_unit"] == "unit"
    assert math.isclose(record["difference"], -0.6071428571428571)
    for name in ("ci", "credible_ci", "sequential_ci"):
        low, high = record[f"{name}_low"], record[f"{name}_high"]
        assert -1.0 <= low <= record["difference"] <= high <= 1.0, (name, low, high)
    assert record["ci_low"] == -1.0 and 0.8 < record["ci_high"] < 0.85  # one end cut, one not
    assert record["relative_ci_low"] >= -1.0


def test_only_the_ends_past_the_bounds_move() -> None:
    record = {"ci_low": -1.3, "ci_high": 0.2, "credible_ci_low": None,
              "sequential_ci_low": -0.5, "sequential_ci_high": 1.7,
              "relative_ci_low": -2.5, "relative_ci_high": 9.0,
              "sequential_relative_ci_low": -0.4, "credible_relative_ci_low": math.nan}
    bound_share_intervals(record)
    assert record == {"ci_low": -1.0, "ci_high": 0.2, "credible_ci_low": None,
                      "sequential_ci_low": -0.5, "sequential_ci_high": 1.0,
                      "relative_ci_low": -1.0, "relative_ci_high": 9.0,
                      "sequential_relative_ci_low": -0.4,
                      "credible_relative_ci_low": record["credible_relative_ci_low"]}
    assert math.isnan(record["credible_relative_ci_low"])
