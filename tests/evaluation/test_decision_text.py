"""The decision says why it cannot decide when no data can come: an arm at weight 0, a paused
experiment, an experiment with no traffic at all (the exploratory pass's #5, #7 and #4)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from core.store.db import Database
from core.store.models import Experiment
from evaluation import decisions
from evaluation.results import experiment_results
from tests.evaluation.helpers import add_experiment, apply, correction, prediction
from tests.evaluation.unit_data import clustered, comparison


def _decision(db: Database, counts: dict[str, int], *, weights: tuple[float, float] = (0.5, 0.5),
              status: str = "running", corrected: int = 0) -> dict[str, Any]:
    exp = add_experiment(db, arms=[
        {"name": "control", "candidate": "cand-a", "weight": weights[0], "control": True},
        {"name": "treatment", "candidate": "cand-b", "weight": weights[1], "control": False}])
    cand = {"control": "cand-a", "treatment": "cand-b"}
    apply(db, [prediction(f"{arm}-{i}", experiment_id=exp, arm=arm, candidate=cand[arm])
               for arm, n in counts.items() for i in range(n)])
    apply(db, [correction(f"control-{i}", "y") for i in range(corrected)])
    with db.session() as s:
        s.execute(update(Experiment).where(Experiment.id == exp).values(status=status))
    with db.session() as s:
        return experiment_results(s, exp)["decision"]


def test_an_arm_at_weight_zero_is_told_it_takes_no_traffic(db: Database) -> None:
    # Old text: "not enough data on correction_rate yet; about N more predictions per arm".
    decision = _decision(db, {"control": 300}, weights=(1.0, 0.0), corrected=30)
    (reason,) = decision["reasons"]
    assert reason.startswith("arm 'treatment' has weight 0, so it takes no traffic")
    assert "more predictions per arm" not in reason
    # It never served: "no significant difference so far" spoke of a comparison never made.
    assert "nothing on correction_rate to compare yet" in reason
    assert "significant" not in reason


def test_a_running_arm_that_served_nothing_yet_is_not_said_to_show_no_difference(
        db: Database) -> None:
    # Old text: "no significant difference on correction_rate yet", of an arm that had not
    # served one prediction (a canary's first minutes), as if a comparison had been made.
    decision = _decision(db, {"control": 3})
    (reason,) = decision["reasons"]
    assert reason.startswith("arm 'treatment': nothing on correction_rate to compare yet")
    assert "significant" not in reason


def test_a_paused_experiment_says_it_gathers_no_data_until_resumed(db: Database) -> None:
    decision = _decision(db, {"control": 150, "treatment": 150}, status="paused")
    assert decision["action"] == decisions.KEEP_RUNNING  # the API's enum has no "paused"
    assert decision["reasons"][0].startswith(
        "the experiment is paused, so it gathers no data until it is resumed")
    assert len(decision["reasons"]) == 2  # then the arm's own reason, as when running


def test_a_draft_says_it_gathers_no_data_until_started(db: Database) -> None:
    """It read "keep running" with only "no traffic yet" beside it, for an experiment that
    was never started."""
    decision = _decision(db, {}, status="draft")
    assert decision["action"] == decisions.KEEP_RUNNING  # the API's enum has no "draft"
    assert decision["reasons"] == [
        "the experiment is a draft, so it gathers no data until it is started (`abvoc "
        "experiment start ID`, POST /v1/experiments/{id}/start)",
        "no traffic yet: no arm has served a prediction, so there is nothing to compare"]


def test_an_experiment_without_traffic_says_so(db: Database) -> None:
    # Old text: "no significant difference on correction_rate yet (no baseline yet on the
    # control arm)".
    decision = _decision(db, {})
    assert decision["reasons"] == ["no traffic yet: no arm has served a prediction, so there "
                                   "is nothing to compare"]
    assert decision["action"] == decisions.KEEP_RUNNING
    assert decision["arms"] == {"treatment": decisions.KEEP_RUNNING}


def test_a_stopped_experiment_without_traffic_is_inconclusive(db: Database) -> None:
    decision = _decision(db, {}, status="stopped")
    assert decision["action"] == decisions.INCONCLUSIVE
    assert decision["reasons"][1].startswith("no traffic yet")


def test_a_killed_experiment_is_inconclusive_not_told_to_keep_running(db: Database) -> None:
    """Killed, it sends all its traffic to control outside its results: "keep running" would
    wait for data that never comes."""
    decision = _decision(db, {}, status="killed")
    assert decision["action"] == decisions.INCONCLUSIVE
    assert decision["reasons"][0].startswith("the experiment was killed")
    # It can be resumed: not "run a new experiment", which the page's own advice contradicted.
    assert decision["reasons"][0].endswith("resume it to gather more, or stop it")
    assert decision["reasons"][1].startswith("no traffic yet")


def test_a_slice_warning_does_not_follow_an_overall_mismatch() -> None:
    # The overall mismatch already stops everything; the slice warning would only repeat it.
    srm = {"flagged": True, "mismatch": True, "threshold": 0.001, "mismatched_slices": ["a"],
           "slice_warning": "sample ratio mismatch within slice a"}
    results = {"experiment": {"primary_metric": "conv", "status": "running"}, "srm": srm,
               "variants": [{"name": "c", "shadow": False}, {"name": "t", "shadow": False}]}
    decision = decisions.decide(results)
    assert decision["action"] == decisions.STOP
    assert decision["reasons"][0].startswith("sample ratio mismatch overall")
    assert len(decision["reasons"]) == 1


def test_the_sample_still_needed_names_units_where_the_test_counts_units(db: Database) -> None:
    """Units that send several requests each: the built-in primary is tested per unit, so the
    sample still needed counts units. The text said "predictions" (the exploratory pass's F9),
    which no amount of extra traffic from the same users reaches."""
    exp = add_experiment(db)
    apply(db, clustered(seed=3, units=20, experiment_id=exp)[0])
    with db.session() as s:
        res = experiment_results(s, exp)
    rec = comparison(res, res["experiment"]["primary_metric"])
    assert rec["analysis_unit"] == "unit"
    power = res["power"]["treatment"]
    assert power["still_needed"] == power["per_arm"] - min(rec["n_control"], rec["n_treatment"])
    (reason,) = res["decision"]["reasons"]
    assert f"about {power['still_needed']} more units per arm" in reason
    assert "predictions per arm" not in reason


def test_an_arm_name_is_quoted_as_typed_not_as_python_repr(db: Database) -> None:
    """The name ``it's C:\\b`` read ``arm 'it\\'s C:\\\\b'`` (repr's escapes) in the reasons."""
    name = "it's C:\\b"
    exp = add_experiment(db, arms=[
        {"name": "control", "candidate": "cand-a", "weight": 1.0, "control": True},
        {"name": name, "candidate": "cand-b", "weight": 0.0, "control": False}])
    apply(db, [prediction(f"c-{i}", experiment_id=exp, arm="control", candidate="cand-a")
               for i in range(30)])
    with db.session() as s:
        (reason,) = experiment_results(s, exp)["decision"]["reasons"]
    assert reason.startswith("arm 'it's C:\\b' has weight 0"), reason
