"""The results' rate guardrails count predictions as independent only as far as the units
allow: where a unit's requests fail together, its predictions are discounted by the design
effect over units (:mod:`evaluation.guardrail_counts`), as the per-unit tests are."""

from __future__ import annotations

import numpy as np

from core.store.db import Database
from evaluation import decisions
from evaluation.guardrail_counts import FIGURE, effective_predictions
from evaluation.results import experiment_results
from evaluation.unit_sums import Moments
from tests.evaluation.helpers import add_experiment, apply, prediction

LIMIT = 0.05


def test_two_units_failing_every_request_are_no_breach(db: Database) -> None:
    # 20 units per arm, 20 requests each; in the treatment 2 units fail all of theirs: 10 % of
    # the predictions, but 2 of 20 units say little about the arm's rate against 4 %.
    exp = add_experiment(db, guardrails={"error_rate": 0.04})
    batch = []
    for arm, candidate in (("control", "cand-a"), ("treatment", "cand-b")):
        for u in range(20):
            failing = arm == "treatment" and u < 2
            batch += [prediction(f"{arm}-{u}-{i}", arm=arm, candidate=candidate,
                                 unit_id=f"{arm}-{u}", error="boom" if failing else None)
                      for i in range(20)]
    apply(db, batch)
    with db.session() as s:
        results = experiment_results(s, exp)
    figures = results["metrics"]["treatment"]["all"]
    assert figures["predictions"] == 400 and figures["error_rate"] == 0.1
    assert not any("guardrail" in r for r in results["decision"]["reasons"]), results["decision"]
    assert results["decision"]["arms"]["treatment"] != "stop"
    assert 15 < figures[FIGURE]["error_rate"] < 25, figures[FIGURE]  # about 400 / 21


def _breached(requests: np.ndarray, errors: np.ndarray, looks: np.ndarray) -> bool:
    for k in looks:
        x, y = requests[:k], errors[:k]
        moments = Moments(float(k), x.sum(), y.sum(), (x * x).sum(), (y * y).sum(),
                          (x * y).sum())
        figures = {"predictions": int(x.sum()), "error_rate": y.sum() / x.sum(),
                   "latency_p99_ms": None, FIGURE: {"error_rate": effective_predictions(moments)}}
        if decisions._guardrail_breaches("t", figures, {"error_rate": LIMIT}):
            return True
    return False


def test_clustered_failures_at_the_limit_are_rarely_breached_under_peeking() -> None:
    # Units send 1-20 requests, each unit's error rate drawn from Beta(0.05, 0.95): the arm's
    # rate sits at the limit. Counting predictions, 47 % of these runs breached.
    rng = np.random.default_rng(11)
    looks = np.arange(50, 3001, 50)

    def breaches(rate: float, runs: int) -> float:
        hits = 0
        for _ in range(runs):
            requests = rng.integers(1, 21, looks[-1]).astype(float)
            p = rng.beta(rate, 1 - rate, looks[-1])
            errors = rng.binomial(requests.astype(int), p).astype(float)
            hits += _breached(requests, errors, looks)
        return hits / runs

    assert breaches(LIMIT, 200) <= 0.06  # about 0.01 (SE 0.007)
    assert breaches(1.6 * LIMIT, 60) >= 0.9  # a real breach is still found
