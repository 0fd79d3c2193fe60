"""Imported number results whose RMSE squares past float range are refused with a message,
not an OverflowError traceback."""

from __future__ import annotations

import pytest

from serving.bundles.manifest import OutputSpec
from serving.bundles.offline_metrics import OfflineError, check_imported


def test_an_rmse_too_large_to_combine_is_a_clear_refusal() -> None:
    rows = {"lab": {"n": 100, "mae": 1e200, "rmse": 1e201},
            "field": {"n": 100, "mae": 1.0, "rmse": 1.5}}
    with pytest.raises(OfflineError, match="'rmse' is too large to combine"):
        check_imported(OutputSpec("number"), {"slices": rows})
    fine = check_imported(OutputSpec("number"), {"slices": {
        "lab": {"n": 100, "mae": 1.0, "rmse": 2.0}, "field": {"n": 100, "mae": 3.0,
                                                              "rmse": 4.0}}})
    assert fine["overall"]["mae"] == 2.0 and fine["overall"]["rmse"] == pytest.approx(10 ** 0.5,
                                                                              abs=1e-4)
