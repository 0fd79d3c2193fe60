"""A store for the Offline-vs-online, VOC, Inspector and Operations pages: the two-arm
experiment of conftest (its events through outbox → relay → bus → worker) with offline results
for both candidates, an OCR prediction with stages and a hostile correction comment, outcome
reports, ledger rows, a guardrail event and a worker heartbeat."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Flask
from sqlalchemy import update

from core.store.models import ComponentHeartbeat, Experiment, Outcome, ServedPrediction
from tests.dashboards.conftest import NAME, seed_events
from tests.evaluation.helpers import T0, add_candidate, add_experiment, correction, flow, prediction

OFFLINE = {"overall": {"n": 400, "exact_match": 0.9},
           "slices": {"printed/middle": {"n": 300, "exact_match": 0.92},
                      "handwritten/high": {"n": 100, "exact_match": 0.85}},
           "label_shares": {"x^{2}": 0.8, "y^{2}": 0.2}}
OCR_ID = "ocr-0001"
STAGES = {
    "detector": {"boxes": [[10, 20, 30, 50], [34, 8, 44, 24]]},
    "recognizer": {"classes": ["x", "3"], "scores": [0.97, 0.61],
                   "runner_up": [["X", 0.02], ["2", 0.3]]},
    "aligner": {"relations": [[-1, "root", 1.0], [0, "sup", 0.88]]},
    "converter": {"latex": "x^{3}"},
}
HOSTILE = "<script>window.__abvoc_xss = 1</script> wrong exponent"
OUTCOME_METRIC = "<i>paid</i>"


def seed_pages(app: Flask) -> int:
    services = app.extensions["abvoc"]
    db = services.db
    add_candidate(db, "cand-a", OFFLINE)
    add_candidate(db, "cand-b", OFFLINE)
    experiment_id = add_experiment(db, name=NAME)
    batch = seed_events()
    at = T0 + timedelta(hours=2, minutes=30)
    batch.append(prediction(OCR_ID, experiment_id=experiment_id, candidate="cand-a",
                            slice_="handwritten/high", output="x^{3}", at=at, stages=STAGES))
    fix = correction(OCR_ID, "x^{2}", at=at + timedelta(minutes=1))
    fix["comment"], fix["rating"] = HOSTILE, 2
    batch.append(fix)
    applied = flow(db, services.bus, batch, services.settings.topic_prefix)
    assert applied == len(batch)
    with db.session() as s:
        s.add_all([Outcome(outcome_id=f"o-{i}", event_id=f"e-o-{i}", experiment_id=experiment_id,
                           metric=OUTCOME_METRIC, value=float(i), prediction_id=OCR_ID,
                           unit_id=f"u-{OCR_ID}", arm="control",
                           observed_at=at + timedelta(minutes=2 + i), counted_at=None)
                   for i in range(3)])
        s.add_all([ServedPrediction(prediction_id=f"led-{i}", experiment_id=experiment_id,
                                    candidate="cand-b" if i % 2 else "cand-a",
                                    arm="treatment" if i % 2 else "control",
                                    created_at=at + timedelta(seconds=i), latency_ms=5.0 + i,
                                    error=i % 10 == 0)
                   for i in range(40)])
        s.add(ComponentHeartbeat(component="worker", instance="host-1", started_at=T0,
                                 beat_at=T0, failing=False, restarts=1, lag_s=2.5,
                                 last_error="<b>boom</b>"))
        exp = s.get(Experiment, experiment_id)
        assert exp is not None
        arms: list[dict[str, Any]] = [dict(a) for a in exp.arms]
        arms[1]["paused"] = "guardrail: error rate 12% > 5%"
        s.execute(update(Experiment).where(Experiment.id == experiment_id).values(
            arms=arms, status_reason="arm 'treatment' paused: guardrail: error rate 12% > 5%"))
    return experiment_id
