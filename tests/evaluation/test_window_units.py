"""An arm's `units` are the units that sent its predictions, as its per-unit tests count them
(the exploratory pass's D8): in a window, units returning from earlier hours count too (the
aggregates count a unit in the hour it was first seen), and the note on predictions per unit
says an average, not a maximum."""

from __future__ import annotations

from datetime import timedelta

from core.store.db import Database
from evaluation.online import ALL
from evaluation.results import experiment_results
from tests.evaluation.helpers import T0, add_experiment, apply, correction, prediction


def _hour(exp: int, at, units: range, tag: str) -> list[dict]:  # noqa: ANN001
    batch = []
    for arm, cand in (("control", "cand-a"), ("treatment", "cand-b")):
        for u in units:
            for k in range(3):
                pid = f"{tag}-{arm}-{u}-{k}"
                batch.append(prediction(pid, experiment_id=exp, arm=arm, candidate=cand,
                                        unit_id=f"{arm}-{u}", at=at))
                if (u + k) % 3 == 0:
                    batch.append(correction(pid, "y^{2}", at=at))
    return batch


def test_a_windows_units_are_those_that_sent_its_predictions(db: Database) -> None:
    exp = add_experiment(db)
    later = T0 + timedelta(hours=1)
    apply(db, _hour(exp, T0, range(0, 10), "first") + _hour(exp, later, range(5, 15), "second"))
    with db.session() as s:
        window = experiment_results(s, exp, since=later, recounts={})
        whole = experiment_results(s, exp)
    for report, units in ((window, 10), (whole, 15)):  # 5 returning + 5 new; all 15
        for arm in ("control", "treatment"):
            assert report["metrics"][arm][ALL]["units"] == units
        rec = next(r for r in report["comparisons"] if r["metric"] == "correction_rate"
                   and r["slice"] == ALL)
        assert (rec["n_control"], rec["n_treatment"]) == (units, units)
    assert window["metrics"]["control"][ALL]["predictions"] == 30
