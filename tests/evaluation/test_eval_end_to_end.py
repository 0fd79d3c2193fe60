"""A running experiment fed by real events, outbox → bus → worker, on the embedded log with
SQLite and on Kafka with PostgreSQL; results and divergence come from what the worker stored."""

from __future__ import annotations

import numpy as np
import pytest

from core.bus.embedded import EmbeddedBus
from core.bus.kafka import KafkaBus
from core.store import schema
from core.store.db import Database
from evaluation.divergence import divergence_report
from evaluation.results import experiment_results
from evaluation.stage_blame import stage_attribution
from tests.evaluation.helpers import add_candidate, add_experiment, correction, flow, prediction

pytestmark = pytest.mark.slow


def _traffic(exp: int, n: int, seed: int) -> tuple[list[dict], dict[str, int]]:
    rng = np.random.default_rng(seed)
    batch, corrected = [], {"control": 0, "treatment": 0}
    for i in range(n):
        arm = "control" if rng.random() < 0.5 else "treatment"
        cand = "cand-a" if arm == "control" else "cand-b"
        slice_ = "handwritten/middle" if rng.random() < 0.7 else "printed/middle"
        pid = f"e2e-{seed}-{i}"
        batch.append(prediction(pid, experiment_id=exp, arm=arm, candidate=cand,
                                slice_=slice_, latency_ms=float(rng.lognormal(2.3, 0.3)),
                                unit_id=f"user-{i}", output="x^{2}",
                                stages={"recognizer": {"classes": ["x", "2"]},
                                        "detector": {"boxes": [[0, 0, 1, 1], [1, 0, 2, 1]]},
                                        "aligner": {"relations": [[-1, "start", 1], [0, "sup", 1]]},
                                        "converter": {"latex": "x^{2}"}}))
        if rng.random() < (0.25 if arm == "control" else 0.12):
            batch.append(correction(pid, "x_{2}"))
            corrected[arm] += 1
        if i % 3 == 0:  # a shadow copy of the same request
            batch.append(prediction(f"{pid}-s", experiment_id=exp, arm=None, shadow=True,
                                    candidate="cand-s", slice_=slice_, output="x^{2}"))
    return batch, corrected


@pytest.mark.parametrize("transport", ["embedded", "kafka"])
def test_running_experiment_from_real_events(transport: str, request: pytest.FixtureRequest,
                                             tmp_path) -> None:  # noqa: ANN001
    if transport == "kafka":
        db = Database(request.getfixturevalue("postgres").create_database(migrated=True))
        bus = KafkaBus([request.getfixturevalue("kafka").bootstrap])
    else:
        db = Database(f"sqlite:///{tmp_path / 'abvoc.db'}")
        bus = EmbeddedBus(db, partitions=3, heartbeat_s=0.2)
    schema.upgrade(db)
    for cand in ("cand-a", "cand-b", "cand-s"):
        add_candidate(db, cand, {"overall": {"n": 600, "exact_match": 0.9},
                                 "slices": {"printed/middle": {"n": 400, "exact_match": 0.95},
                                            "handwritten/middle": {"n": 200,
                                                                   "exact_match": 0.8}}})
    exp = add_experiment(db, shadows=[{"candidate": "cand-s"}],
                         guardrails={"p99_latency_ms": 1000.0, "error_rate": 0.05})
    batch, corrected = _traffic(exp, 1600, seed=1)
    assert flow(db, bus, batch, f"e2e{transport}") == len(batch)

    with db.session() as s:
        results = experiment_results(s, exp)
        report = divergence_report(s, exp)
        stages = stage_attribution(s, exp)
    control = results["metrics"]["control"]["all"]
    assert control["corrections"] == corrected["control"]
    assert control["predictions"] + results["metrics"]["treatment"]["all"]["predictions"] == 1600
    assert results["metrics"]["shadow:cand-s"]["all"]["predictions"] == 534
    assert results["trustworthy"] is True
    assert results["decision"]["action"] == "ship"
    assert results["decision"]["arm"] == "treatment"
    names = {r["treatment"] for r in results["comparisons"]}
    assert names == {"treatment", "shadow:cand-s"}
    # Online traffic is 70% handwritten against 33% offline: the mix shift is found.
    mixes = {m["candidate"]: m for m in report["traffic_mix"]}
    assert mixes["cand-a"]["shifted"]
    assert any(f["kind"] == "traffic_mix" for f in report["findings"])
    # Every correction turned a superscript into a subscript: the aligner's error.
    overall = next(r for r in stages["rows"] if r["candidate"] == "cand-a" and r["slice"] == "all")
    assert overall["top_stage"] == "aligner"
    assert overall["errors"] == corrected["control"]
    db.dispose()
