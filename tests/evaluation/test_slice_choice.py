"""Reports show slice `all` and at most `max_slices` other slices, those with the most
predictions (for the divergence, those the offline results name first), and say what they left
out; `all` is the same whatever the limit. Through the worker's real aggregates."""

from __future__ import annotations

from datetime import timedelta

from core.store.db import Database
from core.store.models import Candidate
from evaluation.divergence import divergence_report
from evaluation.results import experiment_results
from tests.evaluation.helpers import T0, add_experiment, apply, correction, prediction

# Predictions per slice, each arm alike: "s0" is the busiest.
COUNTS = {f"s{i}": 12 - i for i in range(8)}


def _traffic(db: Database) -> int:
    exp = add_experiment(db)
    batch, fixes = [], []
    for arm, cand in (("control", "cand-a"), ("treatment", "cand-b")):
        for slice_, n in COUNTS.items():
            for k in range(n):
                pid = f"{arm}-{slice_}-{k}"
                batch.append(prediction(pid, arm=arm, candidate=cand, slice_=slice_,
                                        at=T0 + timedelta(minutes=k)))
                if k % 3 == 0:
                    fixes.append(correction(pid, "y"))
    apply(db, batch)
    apply(db, fixes)
    return exp


def _slices_in(report: dict) -> set[str]:
    return ({s for arm in report["metrics"].values() for s in arm}
            | {r["slice"] for r in report["comparisons"]}
            | {r["slice"] for r in report["latency"]})


def test_results_keep_the_busiest_slices_and_say_what_they_left_out(db: Database) -> None:
    exp = _traffic(db)
    with db.session() as s:
        capped = experiment_results(s, exp, max_slices=3)
        whole = experiment_results(s, exp)
        none = experiment_results(s, exp, max_slices=0)
    assert _slices_in(capped) == {"all", "s0", "s1", "s2"}
    left = 2 * sum(n for s_, n in COUNTS.items() if s_ not in ("s0", "s1", "s2"))
    assert capped["slice_choice"] == {"shown": 3, "left_out": 5, "left_out_predictions": left,
                                      "max_slices": 3}
    assert _slices_in(whole) == {"all", *COUNTS} and whole["slice_choice"]["left_out"] == 0
    assert _slices_in(none) == {"all"} and none["slice_choice"]["shown"] == 0
    # What is left out still counts in `all`: its figures and tests do not move.
    for report in (capped, none):
        assert report["metrics"] == {arm: {s_: m for s_, m in whole["metrics"][arm].items()
                                           if s_ in _slices_in(report)}
                                     for arm in whole["metrics"]}
        assert {(r["metric"], r["p_value"]) for r in report["comparisons"]
                if r["slice"] == "all"} == {(r["metric"], r["p_value"])
                                            for r in whole["comparisons"] if r["slice"] == "all"}
        assert report["srm"]["units"] == whole["srm"]["units"]


def test_divergence_puts_the_slices_offline_results_name_first(db: Database) -> None:
    exp = _traffic(db)
    with db.session() as s:
        s.add(Candidate(name="cand-b", version="1", backend="torch", pipeline={},
                        artifacts="/nowhere", requirements={}, created_at=T0, updated_at=T0,
                        offline_results={"overall": {"n": 100, "exact_match": 0.7},
                                         "slices": {"s6": {"n": 50, "exact_match": 0.7}}}))
    with db.session() as s:
        report = divergence_report(s, exp, max_slices=2)
        whole = divergence_report(s, exp)
    assert {r["slice"] for r in report["slices"]} == {"all", "s6", "s0"}
    assert report["slice_choice"]["left_out"] == 6
    # The traffic mix still weighs every slice.
    assert report["traffic_mix"] == whole["traffic_mix"]


def test_what_is_left_out_counts_served_predictions_not_shadow_copies(db: Database) -> None:
    """One shadow beside two arms: 96 served requests left out were reported as 192."""
    exp = add_experiment(db, shadows=[{"candidate": "cand-s"}])
    batch = []
    for arm, cand in (("control", "cand-a"), ("treatment", "cand-b")):
        for slice_, n in COUNTS.items():
            for k in range(n):
                pid = f"{arm}-{slice_}-{k}"
                batch.append(prediction(pid, experiment_id=exp, arm=arm, candidate=cand,
                                        slice_=slice_))
                batch.append(prediction(f"shadow-{pid}", experiment_id=exp, arm=None,
                                        candidate="cand-s", shadow=True, slice_=slice_))
    apply(db, batch)
    with db.session() as s:
        choice = experiment_results(s, exp, max_slices=3)["slice_choice"]
    served = 2 * sum(n for s_, n in COUNTS.items() if s_ not in ("s0", "s1", "s2"))
    assert choice == {"shown": 3, "left_out": 5, "left_out_predictions": served, "max_slices": 3}
