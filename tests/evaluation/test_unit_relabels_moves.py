"""Moving labelled units' sums in bulk (evaluation.unit_relabels._move, numpy over the units)
gives the moments that moving them one at a time through `contributions` gave."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation import aggregation as agg
from evaluation.online import Variant
from evaluation.unit_relabels import _move
from evaluation.unit_sums import NO_UNITS, Moments, contributions

VARIANT = Variant("treatment", "ocr-small-mixed", False)


def _one_at_a_time(moments: dict, before: np.ndarray, after: np.ndarray) -> dict:
    out = dict(moments)
    for b, a in zip(before, after, strict=True):
        old = contributions(dict(zip(agg.UNIT_COLUMNS, b, strict=True)))
        new = contributions(dict(zip(agg.UNIT_COLUMNS, a, strict=True)))
        for metric, contribution in new.items():
            if contribution != old[metric]:
                key = (VARIANT, "all", metric)
                out[key] = out.get(key, NO_UNITS) - old[metric] + contribution
    return out


@pytest.mark.parametrize("seed", range(5))
def test_bulk_moves_agree_with_one_unit_at_a_time(seed: int) -> None:
    rng = np.random.default_rng(seed)
    units, width = 300, len(agg.UNIT_COLUMNS)
    before = rng.integers(0, 6, (units, width)).astype(float)
    before[rng.random(units) < 0.2] = 0.0  # units with no observation contribute nothing
    after = before.copy()
    moved = rng.random(units) < 0.5  # the others' contributions do not change
    after[moved, agg.UNIT_COLUMNS.index("truths")] += 1
    after[moved, agg.UNIT_COLUMNS.index("exact_sum")] += rng.integers(0, 2, moved.sum())
    start = {(VARIANT, "all", "exact_match"): Moments(40.0, 90.0, 30.0, 250.0, 60.0, 95.0)}
    bulk = dict(start)
    _move(bulk, VARIANT, "all", before, after)
    expected = _one_at_a_time(start, before, after)
    assert bulk.keys() == expected.keys() and len(bulk) > 1
    for key, value in expected.items():
        assert bulk[key] == pytest.approx(value, rel=1e-12, abs=1e-9), key


def test_units_whose_sums_do_not_change_move_nothing() -> None:
    rows = np.ones((3, len(agg.UNIT_COLUMNS)))
    moments: dict = {}
    _move(moments, VARIANT, "all", rows, rows.copy())
    assert moments == {}
