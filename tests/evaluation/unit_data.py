"""Clustered traffic for the per-unit tests: units that send several requests each, and what
statsmodels says their means' variance is."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm

from evaluation.online import ALL
from tests.evaluation.helpers import correction, prediction

ARMS = (("control", "cand-a"), ("treatment", "cand-b"))


def clustered(seed: int = 7, units: int = 30, experiment_id: int = 1, prefix: str = "",
              ) -> tuple[list[dict], dict]:
    """Units that send 1-8 requests each in two slices, each unit correcting at its own rate;
    returns the events and, per arm, each prediction's (unit, slice, corrected, exact)."""
    rng = np.random.default_rng(seed)
    batch, rows = [], {}
    for arm, cand in ARMS:
        rows[arm] = []
        for u in range(units):
            rate = rng.beta(0.6, 1.4)
            for k in range(int(rng.integers(1, 9))):
                pid, slice_ = f"{prefix}{arm[0]}{u}-{k}", str(rng.choice(["a", "b"]))
                batch.append(prediction(pid, arm=arm, candidate=cand, unit_id=f"{arm}-{u}",
                                        slice_=slice_, output="x^{2}",
                                        experiment_id=experiment_id))
                corrected = bool(rng.random() < rate)
                exact = corrected and bool(rng.random() < 0.4)
                if corrected:
                    batch.append(correction(pid, "x^{2}" if exact else "y^{2}"))
                rows[arm].append((f"{arm}-{u}", slice_, corrected, exact))
    return batch, rows


def comparison(report: dict, metric: str, slice_: str = ALL) -> dict:
    return next(r for r in report["comparisons"]
                if r["metric"] == metric and r["slice"] == slice_ and r["treatment"] == "treatment")


def close(record: dict) -> dict:
    """`record` with its numbers compared up to float summation order."""
    return {k: pytest.approx(v, rel=1e-6, abs=1e-6)
            if isinstance(v, float) and not isinstance(v, bool) else v
            for k, v in record.items()}


def cluster_variance(values: np.ndarray, units: np.ndarray) -> float:
    """statsmodels' cluster-robust (CR0) variance of a mean, times K/(K-1) as the delta
    method's sample variance of the linearised values has it."""
    fit = sm.OLS(values, np.ones(len(values))).fit(
        cov_type="cluster", cov_kwds={"groups": units, "use_correction": False})
    k = len(np.unique(units))
    return float(fit.bse[0] ** 2) * k / (k - 1)
