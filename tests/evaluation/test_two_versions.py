"""An experiment may run two versions of one candidate name (control iris v1, treatment iris
v2): the divergence report, the results and the stage attribution keep each version apart, so
each version's online figures are held against its own offline results."""

from __future__ import annotations

import pytest

from core.output_types import STAGE_ANSWERS
from core.store.db import Database
from core.store.models import Candidate
from evaluation.divergence import divergence_report
from evaluation.results import experiment_results
from evaluation.stage_blame import stage_attribution
from tests.evaluation.helpers import T0, add_experiment, apply, correction, prediction

IRIS = ["setosa", "versicolor", "virginica"]
V2_CLASSES = [*IRIS, "hybrid"]
N = 200
# version -> (offline exact match, its classes, answers corrected online out of N)
VERSIONS = {"1": (0.95, IRIS, 10), "2": (0.90, V2_CLASSES, 80)}


def add_iris(db: Database, versions: tuple[str, ...] = ("1", "2")) -> None:
    with db.session() as s:
        for version in versions:
            exact, classes, _ = VERSIONS[version]
            s.add(Candidate(name="iris", version=version, created_at=T0, updated_at=T0,
                            pipeline={"output": {"type": "label", "classes": classes}},
                            offline_results={"overall": {"n": 1000, "exact_match": exact}}))


def seed(db: Database) -> int:
    """iris v1 right 95% offline and online; iris v2 right 90% offline but 60% online."""
    add_iris(db)
    exp = add_experiment(db, arms=[
        {"name": "control", "candidate": "iris", "version": "1", "weight": 1.0,
         "control": True},
        {"name": "treatment", "candidate": "iris", "version": "2", "weight": 1.0,
         "control": False}])
    batch = []
    for arm, version in (("control", "1"), ("treatment", "2")):
        wrong = VERSIONS[version][2]
        for i in range(N):
            pid = f"{arm}-{i:03d}"
            event = prediction(pid, experiment_id=exp, arm=arm, candidate="iris",
                               output="setosa", slice_="all", stages={STAGE_ANSWERS: [
                                   {"stage": f"net{version}", "answer": "setosa"},
                                   {"stage": "to_label", "answer": "setosa"}]})
            event["output_type"] = "label"
            batch.append(event)
            if i < wrong:
                batch.append(correction(pid, "versicolor"))
    apply(db, batch)
    return exp


def test_divergence_holds_each_version_against_its_own_offline_results(db: Database) -> None:
    exp = seed(db)
    with db.reading() as s:
        report = divergence_report(s, exp)
    rows = {(r["candidate"], r["version"]): r for r in report["slices"] if r["slice"] == "all"}
    assert set(rows) == {("iris", "1"), ("iris", "2")}
    for version, (exact, _, wrong) in VERSIONS.items():
        row = rows[("iris", version)]
        assert row["online"]["n"] == N and row["offline"]["exact_match"] == exact
        assert row["online"]["accuracy_bound"] == pytest.approx(1 - wrong / N)
        # over the corrected predictions only, so named apart from the offline figures
        assert row["online"]["exact_match_with_truth"] == 0.0
        assert "token_edit_distance_with_truth" in row["online"]
    assert not rows[("iris", "1")]["flagged"] and rows[("iris", "2")]["flagged"]
    # v2's classes are its own: four, not v1's three
    confusion = {m["version"]: m["confusion"]["all"] for m in report["label_metrics"]}
    assert confusion["1"]["classes"] == IRIS and confusion["2"]["classes"] == V2_CLASSES
    assert {(m["candidate"], m["version"]) for m in report["prediction_shift"]} == {
        ("iris", "1"), ("iris", "2")}
    gaps = [f for f in report["findings"] if f["kind"] == "accuracy_gap"]
    assert [(f["candidate"], f["version"]) for f in gaps] == [("iris", "2")]
    assert gaps[0]["explanation"].startswith("iris v2 overall")
    # every finding names the version it is about, as its sentence does
    assert report["findings"] and all(
        f["explanation"].startswith(f"iris v{f['version']} ") for f in report["findings"])


def test_one_version_per_name_reads_as_before(db: Database) -> None:
    add_iris(db, ("1",))
    exp = add_experiment(db, name="one", arms=[
        {"name": "control", "candidate": "iris", "version": "1", "weight": 1.0,
         "control": True},
        {"name": "treatment", "candidate": "iris", "version": "1", "weight": 1.0}])
    apply(db, [prediction(f"one-{i}", experiment_id=exp, arm=arm, candidate="iris",
                          output="setosa", slice_="all")
               for i, arm in enumerate(["control", "treatment"] * 30)]
          + [correction(f"one-{i}", "versicolor") for i in range(20)])
    with db.reading() as s:
        report = divergence_report(s, exp)
    assert [(r["candidate"], r["version"], r["online"]["n"]) for r in report["slices"]] == [
        ("iris", "1", 60)]  # both arms run v1: pooled, as one candidate always was
    gap = next(f for f in report["findings"] if f["kind"] == "accuracy_gap")
    assert gap["version"] == "1" and gap["explanation"].startswith("iris overall")
    assert not any("iris v1" in f["explanation"] for f in report["findings"])


def test_results_read_each_arms_own_version(db: Database) -> None:
    exp = seed(db)
    with db.reading() as s:
        results = experiment_results(s, exp)
    versions = {v["name"]: (v["candidate"], v["version"]) for v in results["variants"]}
    assert versions == {"control": ("iris", "1"), "treatment": ("iris", "2")}
    labels = results["label_metrics"]
    assert labels["control"]["classes"] == IRIS and labels["control"]["version"] == "1"
    assert labels["treatment"]["classes"] == V2_CLASSES and labels["treatment"]["version"] == "2"


def test_stage_attribution_keeps_versions_apart(db: Database) -> None:
    exp = seed(db)
    with db.reading() as s:
        report = stage_attribution(s, exp)
    rows = {(r["candidate"], r["version"]): r for r in report["rows"] if r["slice"] == "all"}
    assert set(rows) == {("iris", "1"), ("iris", "2")}
    for version, (_, _, wrong) in VERSIONS.items():
        row = rows[("iris", version)]
        assert row["stages"] == [f"net{version}", "to_label"]
        assert (row["errors"], row["with_truth"]) == (wrong, wrong)
        assert row["counts"][f"net{version}"] == wrong
