"""Where units send several answers, the prediction shift against the offline labels is tested
over units: Pearson's test took each answer as independent, and an A/A comparison of units
whose class leanings vary flagged a shift in most runs."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
from statsmodels.stats.multivariate import test_mvmean as hotelling_test

from core.store.db import Database
from evaluation import unit_class_counts
from evaluation.clustered_shares import clustered_mcnemar, clustered_shift, online_covariance
from evaluation.divergence import divergence_report, mcnemar
from evaluation.label_metrics import prediction_shift
from tests.evaluation.helpers import (
    T0,
    add_candidate,
    add_experiment,
    apply,
    correction,
    prediction,
)
from tests.evaluation.test_truth_rules import _label

CLASSES = ("attack", "defend", "idle", "move")
OFFLINE = np.array([0.2, 0.2, 0.3, 0.3])


def _units(rng: np.random.Generator, k: int, answers: int, leaning: float) -> np.ndarray:
    """K units' class counts; each unit's own shares drawn around OFFLINE (Dirichlet with
    concentration `leaning`: the smaller, the more a unit keeps to its own classes)."""
    return np.array([rng.multinomial(answers, rng.dirichlet(OFFLINE * leaning))
                     for _ in range(k)], dtype=np.float64)


def _bot_experiment(db: Database) -> int:
    """A label candidate with OFFLINE as its offline label shares, alone in an experiment."""
    add_candidate(db, "bot", {"overall": {"n": 2000, "exact_match": 0.9},
                              "label_shares": dict(zip(CLASSES, OFFLINE.tolist(), strict=True))})
    return add_experiment(db, arms=[
        {"name": "control", "candidate": "bot", "weight": 1.0, "control": True}])


def test_each_shares_variance_is_the_cluster_robust_one_statsmodels_gives() -> None:
    rng = np.random.default_rng(3)
    units = _units(rng, 25, 30, 2.0)
    cov = online_covariance(units)
    groups = np.repeat(np.arange(len(units)), units.sum(axis=1).astype(int))
    labels = np.concatenate([np.repeat(np.arange(len(CLASSES)), row.astype(int))
                             for row in units])
    for j in range(len(CLASSES)):
        fit = sm.OLS((labels == j).astype(float), np.ones(len(labels))).fit(
            cov_type="cluster", cov_kwds={"groups": groups, "use_correction": False})
        # statsmodels' uncorrected sandwich, with the K / (K - 1) the module docstring gives.
        assert cov[j, j] == pytest.approx(fit.bse[0] ** 2 * 25 / 24, rel=1e-10)
        assert fit.params[0] == pytest.approx(units[:, j].sum() / units.sum(), rel=1e-12)


def test_with_a_known_offline_side_it_is_hotellings_test_as_statsmodels_gives() -> None:
    """Units of as many answers each, offline shares known exactly: the test is Hotelling's
    one-sample T^2 of the units' shares against them."""
    rng = np.random.default_rng(8)
    units = _units(rng, 15, 20, 4.0)
    res = clustered_shift(OFFLINE, 1e15, units)
    assert res is not None
    reference = hotelling_test(units[:, :-1] / 20, OFFLINE[:-1])
    assert res.p_value == pytest.approx(reference.pvalue, rel=1e-6)


@pytest.mark.parametrize(("k", "most"), [(12, 0.09), (40, 0.08)])
def test_an_aa_comparison_over_units_holds_its_level_where_pearsons_does_not(
        k: int, most: float) -> None:
    rng = np.random.default_rng(11)
    offline_n, runs = 2000, 400
    over_units = pearson = 0
    for _ in range(runs):
        units = _units(rng, k, 50, 3.0)  # no shift: each unit's shares average OFFLINE
        offline = rng.multinomial(offline_n, OFFLINE) / offline_n
        res = clustered_shift(offline, offline_n, units)
        assert res is not None and res.dof == 3
        over_units += res.p_value < 0.05
        table = np.vstack([offline * offline_n, units.sum(axis=0)])
        pearson += stats.chi2_contingency(table, correction=False).pvalue < 0.05
    assert 0.02 < over_units / runs < most  # the nominal 5 %, give or take the runs' noise
    assert pearson / runs > 0.5


def test_a_real_shift_over_units_is_found() -> None:
    rng = np.random.default_rng(5)
    units = np.array([rng.multinomial(40, [0.1, 0.1, 0.6, 0.2]) for _ in range(40)], float)
    shift = prediction_shift(dict(zip(CLASSES, units.sum(axis=0), strict=True)),
                             dict(zip(CLASSES, OFFLINE, strict=True)), 2000,
                             units=unit_class_counts.UnitClassCounts(CLASSES, units))
    assert shift is not None and shift["analysis_unit"] == "unit" and shift["online_units"] == 40
    assert shift["shifted"] and shift["p_value"] < 1e-6
    idle = next(r for r in shift["classes"] if r["label"] == "idle")
    assert idle["shifted"] and idle["difference"] > 0.25


def test_the_report_tests_over_units_from_the_stored_answers(db: Database) -> None:
    exp = _bot_experiment(db)
    rng = np.random.default_rng(7)
    units = _units(rng, 12, 15, 1.0)
    batch = []
    for u, row in enumerate(units):
        answers = [c for c, n in zip(CLASSES, row.astype(int), strict=True) for _ in range(n)]
        for i, output in enumerate(answers):
            batch.append(prediction(f"p{u}-{i}", experiment_id=exp, candidate="bot",
                                    output=output, unit_id=f"player-{u}",
                                    at=T0 + timedelta(minutes=i)))
    # A failed answer is no answer: counted neither in the aggregates nor per unit.
    batch.append(prediction("failed", experiment_id=exp, candidate="bot", output="idle",
                            unit_id="player-0", error="timeout"))
    apply(db, batch)
    with db.session() as s:
        shift = divergence_report(s, exp)["prediction_shift"][0]["offline_labels"]
    expected = clustered_shift(OFFLINE, 2000, units)
    assert expected is not None
    assert shift["analysis_unit"] == "unit" and shift["online_units"] == 12
    assert shift["chi_square"] == pytest.approx(expected.statistic, rel=1e-9)
    assert shift["p_value"] == pytest.approx(expected.p_value, rel=1e-9)
    assert shift["dof"] == 3 and "unit_note" not in shift
    # Past the live read's limit the test stays per answer, and says why.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(unit_class_counts, "UNIT_CLASS_LIMIT", 100)
        with db.session() as s:
            per_answer = divergence_report(s, exp)["prediction_shift"][0]["offline_labels"]
    assert per_answer["analysis_unit"] == "prediction"
    assert "tested per answer" in per_answer["unit_note"]
    table = np.vstack([OFFLINE * 2000, units.sum(axis=0)])
    assert per_answer["p_value"] == pytest.approx(
        stats.chi2_contingency(table, correction=False).pvalue, rel=1e-9)


def test_one_answer_per_unit_stays_pearsons_test(db: Database) -> None:
    exp = _bot_experiment(db)
    counts = (30, 25, 60, 35)
    apply(db, [prediction(f"{c}-{i}", experiment_id=exp, candidate="bot", output=c)
               for c, n in zip(CLASSES, counts, strict=True) for i in range(n)])
    with db.session() as s:
        shift = divergence_report(s, exp)["prediction_shift"][0]["offline_labels"]
    assert shift["analysis_unit"] == "prediction" and shift["online_units"] is None
    table = np.vstack([OFFLINE * 2000, counts])
    assert shift["p_value"] == pytest.approx(
        stats.chi2_contingency(table, correction=False).pvalue, rel=1e-9)


def test_mcnemar_over_units_is_mcnemars_with_one_pair_per_unit() -> None:
    answered = np.array([1, 1, 0, 1, 0, 1, 1, 0, 1, 1])  # b_i: this unit's answer was changed
    true = 1 - answered  # c_i: this unit's answer was changed to the class
    table = [[0, int(answered.sum())], [int(true.sum()), 0]]
    assert clustered_mcnemar(answered, true) == pytest.approx(
        sm_mcnemar(table, exact=False, correction=False).pvalue, rel=1e-12)
    assert clustered_mcnemar(np.zeros(3), np.zeros(3)) == 1.0


def test_mcnemar_over_units_holds_its_level_where_the_per_answer_one_does_not() -> None:
    """Each unit changes answers mostly one way (answered 'idle', truly 'attack') or mostly
    the other, as a player who complains about one thing complains about it again; both ways
    equally likely overall, so no class is over-predicted."""
    rng = np.random.default_rng(2)
    runs, over_units, per_answer = 400, 0, 0
    for _ in range(runs):
        lean = rng.random(30) < 0.5
        changed = rng.poisson(6, 30)
        b = rng.binomial(changed, np.where(lean, 0.9, 0.1))
        c = changed - b
        over_units += clustered_mcnemar(b, c) < 0.05
        per_answer += mcnemar(float(b.sum()), float(c.sum())) < 0.05
    assert 0.02 < over_units / runs < 0.08
    assert per_answer / runs > 0.25


def test_the_report_tests_the_online_shift_over_units(db: Database) -> None:
    exp = _bot_experiment(db)
    rng = np.random.default_rng(9)
    batch, b, c = [], np.zeros(15), np.zeros(15)
    for u in range(15):
        for i in range(12):
            pid = f"p{u}-{i}"
            answer = str(rng.choice(CLASSES, p=OFFLINE))
            batch.append(prediction(pid, experiment_id=exp, candidate="bot", output=answer,
                                    unit_id=f"player-{u}", at=T0 + timedelta(minutes=i)))
            if rng.random() < 0.3 and answer != "idle":
                batch.append(correction(pid, "idle"))  # the truth was idle
                c[u] += 1
            elif rng.random() < 0.2 and answer == "idle":
                batch.append(correction(pid, "move"))
                b[u] += 1
    apply(db, batch)
    with db.session() as s:
        shift = divergence_report(s, exp)["prediction_shift"][0]
    idle = next(r for r in shift["online_labels"] if r["label"] == "idle")
    assert shift["online_analysis_unit"] == "unit"
    assert idle["p_value"] == pytest.approx(clustered_mcnemar(b, c), rel=1e-12)
    assert idle["discordant"] == b.sum() + c.sum()


def test_a_candidate_giving_every_unit_a_class_never_seen_offline_is_shifted(
        db: Database) -> None:
    """Every unit answers 'stuck' (no offline label has it) from a slice the offline test lacks:
    the units' counts then vary in no direction, and with the offline covariance taken at the
    offline shares, where 'stuck' has none, the report said p 1 and found nothing."""
    add_candidate(db, "bot", {"overall": {"n": 2000, "exact_match": 0.9},
                              "label_shares": dict.fromkeys(CLASSES, 0.25),
                              "slices": {"printed/a": {"n": 1000, "exact_match": 0.9},
                                         "printed/b": {"n": 1000, "exact_match": 0.9}}})
    exp = add_experiment(db, arms=[
        {"name": "control", "candidate": "bot", "weight": 1.0, "control": True}])
    apply(db, [prediction(f"p{u}-{i}", experiment_id=exp, candidate="bot", output="stuck",
                          unit_id=f"player-{u}", slice_="printed/c",
                          at=T0 + timedelta(minutes=i)) for u in range(12) for i in range(8)])
    with db.session() as s:
        report = divergence_report(s, exp)
    shift, mix = report["prediction_shift"][0]["offline_labels"], report["traffic_mix"][0]
    assert shift["analysis_unit"] == mix["analysis_unit"] == "unit"
    assert shift["shifted"] and shift["p_value"] < 1e-6
    assert mix["shifted"] and mix["p_value"] < 1e-6
    assert {f["kind"] for f in report["findings"]} == {"prediction_shift", "traffic_mix"}


def test_verified_labels_that_swap_truths_between_units_leave_mcnemar_per_answer(
        db: Database) -> None:
    """Two verified labels swap 'idle' and 'move' between players 0 and 1: every class keeps
    its total, so the stored (replaced) truths passed the check against the aggregates and
    Durkalski's test read player 1's 'idle' truth where the label put it at player 0."""
    exp = _bot_experiment(db)
    batch = []
    for u in range(12):
        for i in range(4):
            pid = f"p{u:02d}{i}-prediction"
            batch.append(prediction(pid, experiment_id=exp, candidate="bot", output="attack",
                                    unit_id=f"player-{u}", at=T0 + timedelta(minutes=i)))
            if u < 6 and i < 3:
                batch.append(correction(pid, "idle" if u % 2 else "move"))
    apply(db, batch)
    _label(db, "p010-prediction", "move")
    _label(db, "p000-prediction", "idle")
    with db.session() as s:
        shift = divergence_report(s, exp)["prediction_shift"][0]
    idle = next(r for r in shift["online_labels"] if r["label"] == "idle")
    assert shift["online_analysis_unit"] == "prediction" and idle["discordant"] == 9
    assert idle["p_value"] == pytest.approx(mcnemar(0.0, 9.0), rel=1e-12)


def test_units_of_unequal_sizes_are_counted_by_their_effective_number() -> None:
    """A few large units make most of the shares: F(r, K - r) flagged 12 units of geometric
    sizes in 22 A/A runs of 100; on the effective number n^2 / sum m_i^2 it is near 5."""
    rng = np.random.default_rng(0)
    runs, flagged = 300, 0
    for _ in range(runs):
        units = np.array([rng.multinomial(m, rng.dirichlet(OFFLINE * 3))
                          for m in rng.geometric(1 / 30, 12)], dtype=float)
        res = clustered_shift(rng.multinomial(2000, OFFLINE) / 2000, 2000, units)
        assert res is not None
        m = units.sum(axis=1)
        assert res.units == pytest.approx(m.sum() ** 2 / (m * m).sum())
        flagged += res.p_value < 0.05
    assert flagged / runs < 0.1


def test_a_table_finding_names_the_test_it_took() -> None:
    from evaluation.findings import _offline_shift_findings

    off = {"shifted": True, "p_value": 0.001, "psi": 0.3, "analysis_unit": "unit",
           "classes": [{"label": c, "p_value_holm": 0.2, "shifted": False, "difference": d}
                       for c, d in zip(CLASSES, (0.1, -0.1, 0.05, -0.05), strict=True)]}
    said = _offline_shift_findings(("bot", "1"), "bot", off)[0]["explanation"]
    assert "(test over units p = 0.001" in said
    said = _offline_shift_findings(("bot", "1"), "bot", {**off, "analysis_unit": "prediction"})
    assert "(chi-square p = 0.001" in said[0]["explanation"]


def test_too_few_units_says_their_effective_number_where_one_sent_most() -> None:
    """Ten units, one of which sent 1,000 of 1,018 answers, are about one unit to the F test,
    which then gives no p: the reason gives that number, where "10 units ... needs more units
    than classes" (4) contradicted itself; the traffic mix's test over units says it alike."""
    from evaluation.traffic_mix import _over_units
    from evaluation.unit_class_counts import UnitClassCounts

    rng = np.random.default_rng(0)
    units = np.array([rng.multinomial(1000, OFFLINE)]
                     + [rng.multinomial(2, OFFLINE) for _ in range(9)], dtype=float)
    shift = prediction_shift(dict(zip(CLASSES, units.sum(axis=0), strict=True)),
                             dict(zip(CLASSES, OFFLINE, strict=True)), 2000, CLASSES, 0.05,
                             UnitClassCounts(CLASSES, units))
    assert shift is not None and shift["p_value"] is None and shift["online_units"] == 10
    assert "effective number" in shift["error"] and "1.0 here" in shift["error"]
    _, p, note = _over_units(OFFLINE, 2000.0, units)
    assert np.isnan(p) and note is not None and "1.0 here" in note
    # Units of like sizes keep the plain reason: their count is their effective number.
    even = np.array([rng.multinomial(5, OFFLINE) for _ in range(3)], dtype=float)
    _, p, note = _over_units(OFFLINE, 2000.0, even)
    assert np.isnan(p) and note == ("3 units sent requests of 4 slices: a test over units "
                                    "needs more units than slices")
