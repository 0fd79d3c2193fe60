"""Findings that say what happened: a mix shift is the cause, one slice is one finding, and the
order is a rule that random draws cannot flip."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from evaluation import aggregation as agg
from evaluation.divergence import candidate_divergence
from evaluation.findings import FINDING_FIELDS, rank_findings
from evaluation.online import ALL, Cell

OFFLINE = {
    "overall": {"n": 1000, "exact_match": 0.9},
    "slices": {"printed/middle": {"n": 800, "exact_match": 0.95},
               "handwritten/middle": {"n": 200, "exact_match": 0.70}},
}


def _cells(counts: dict[str, tuple[int, int]]) -> dict[str, Cell]:
    """One cell per slice from (predictions, corrections), plus ``all``."""
    cells: dict[str, Cell] = {}
    total = Cell()
    for slice_, (n, wrong) in counts.items():
        cell = Cell()
        cell.add(agg.PREDICTIONS, "", (n, n, n))
        cell.add(agg.CORRECTED, "", (wrong, wrong, wrong))
        cell.add(agg.EXACT_MATCH, "", (wrong, 0, 0))  # each correction changed the answer
        cells[slice_] = cell
        total.merge(cell)
    cells[ALL] = total
    return cells


def _report(offline: dict, counts: dict[str, tuple[int, int]]) -> list[dict]:
    rows, mix, shift = candidate_divergence("ocr", offline, _cells(counts), 0.05, 0.02)
    findings = rank_findings(rows, [mix] if mix else [], [shift] if shift else [], 0.05)
    # Each field is one a table of findings has a column for.
    assert all(set(f) <= {"rank", *FINDING_FIELDS} for f in findings), findings
    return findings


def test_a_pure_mix_shift_always_ranks_the_mix_first() -> None:
    # Per-slice accuracy as offline (.95 and .70); the online mix flips from 80/20 to 20/80.
    # Each draw moves the within-slice part a little either way; the top finding must not move.
    rng = np.random.default_rng(2026)
    for _ in range(300):
        printed, hand = 400, 1600
        counts = {"printed/middle": (printed, int(rng.binomial(printed, 0.05))),
                  "handwritten/middle": (hand, int(rng.binomial(hand, 0.30)))}
        findings = _report(OFFLINE, counts)
        kinds = [f["kind"] for f in findings]
        assert kinds[0] == "traffic_mix", kinds
        gap = next(f for f in findings if f["kind"] == "accuracy_gap" and f["slice"] == ALL)
        assert kinds.index("traffic_mix") < findings.index(gap)
        assert gap["explained_by"] == "traffic_mix"
        assert "traffic mix explains" in gap["explanation"]
        assert "relabel this slice" not in gap["explanation"]


def test_a_real_drop_within_slices_still_advises_relabeling() -> None:
    # Same mix as offline, handwritten drops from .70 to .40: nothing for the mix to explain.
    findings = _report(OFFLINE, {"printed/middle": (1600, 80), "handwritten/middle": (400, 240)})
    assert findings[0]["kind"] == "accuracy_gap"
    assert all(f["kind"] != "traffic_mix" for f in findings)
    assert all("relabel" in f["explanation"] for f in findings)
    assert all(f["explained_by"] is None for f in findings)


def test_one_slice_gives_one_accuracy_finding() -> None:
    offline = {"overall": {"n": 1000, "exact_match": 0.95},
               "slices": {"printed/middle": {"n": 1000, "exact_match": 0.95}}}
    findings = _report(offline, {"printed/middle": (1000, 200)})
    gaps = [f for f in findings if f["kind"] == "accuracy_gap"]
    assert len(gaps) == 1
    assert gaps[0]["slice"] == ALL and "'printed/middle'" in gaps[0]["explanation"]


def test_equal_severities_are_ordered_by_kind_then_name() -> None:
    mix = {"candidate": "b", "shifted": True, "slices": ["x", "y"], "psi": 0.5, "p_value": 0.0,
           "online_shares": {"x": 0.5, "y": 0.5}, "offline_shares": {"x": 0.5, "y": 0.5},
           "decomposition": {"mix_effect": -0.1, "within_slices": 0.0}}
    row = {"candidate": "a", "slice": ALL, "flagged": True, "gap": -0.1, "p_value": 0.0,
           "online": {"n": 100, "accuracy_bound": 0.8, "accuracy_ci": [0.7, 0.9]},
           "offline": {"exact_match": 0.9}}
    findings = rank_findings([row], [mix], [], 0.05)
    assert [f["kind"] for f in findings] == ["traffic_mix", "accuracy_gap"]
    assert [f["rank"] for f in findings] == [1, 2]


def test_corrections_that_confirm_the_answer_are_not_errors() -> None:
    # 1,000 answers, offline 95% right. Customers sent 500 corrections, 450 of them repeating the
    # answer (a prefilled form sent unchanged): only 50 answers are known wrong.
    offline = {"overall": {"n": 1000, "exact_match": 0.95},
               "slices": {"printed/middle": {"n": 1000, "exact_match": 0.95}}}
    cell = Cell()
    cell.add(agg.PREDICTIONS, "", (1000, 1000, 1000))
    cell.add(agg.CORRECTED, "", (500, 500, 500))
    cell.add(agg.EXACT_MATCH, "", (500, 450, 450))
    total = Cell()
    total.merge(cell)
    rows, _, _ = candidate_divergence("ocr", offline, {"printed/middle": cell, ALL: total},
                                      0.05, 0.02)
    for row in rows:
        assert row["online"]["accuracy_bound"] == pytest.approx(0.95)
        assert row["gap"] == pytest.approx(0.0, abs=1e-12) and not row["flagged"]
        # the Wilson interval is taken on the 950 answers not known wrong
        assert row["online"]["accuracy_ci"] == pytest.approx(
            list(proportion_confint(950, 1000, alpha=0.05, method="wilson")))
    assert rank_findings(rows, [], [], 0.05) == []


def test_an_offline_slice_without_online_traffic_keeps_its_share() -> None:
    """The tester's case: the offline test is 50 % 'féld-ü' and 50 % 'lab'; online traffic is
    70 % 'field' and 30 % 'lab'. The offline mix is reported as it was, the slice with no online
    counterpart named, the decomposition said to cover 'lab' only, and the chi-square test and
    PSI taken on exactly those two distributions (scipy's test, PSI by its definition)."""
    offline = {"overall": {"n": 30, "exact_match": 0.9},
               "slices": {"féld-ü": {"n": 15, "exact_match": 13 / 15},
                          "lab": {"n": 15, "exact_match": 14 / 15}}}
    rows, mix, _ = candidate_divergence("iris", offline,
                                        _cells({"field": (168, 20), "lab": (72, 5)}), 0.05, 0.02)
    assert mix is not None and mix["slices"] == ["field", "féld-ü", "lab"]
    assert mix["offline_shares"] == {"field": 0.0, "féld-ü": 0.5, "lab": 0.5}
    assert mix["online_shares"] == pytest.approx({"field": 0.7, "féld-ü": 0.0, "lab": 0.3})
    assert mix["offline_only"] == {"slices": ["féld-ü"], "share": 0.5}
    assert mix["online_only"] == {"slices": ["field"], "share": pytest.approx(0.7)}
    assert mix["left_out"] == {} and mix["offline_n"] == 30 and mix["online_n"] == 240
    ref = stats.chi2_contingency(np.array([[0, 15, 15], [168, 0, 72]]), correction=False)
    assert (mix["chi_square"], mix["p_value"]) == pytest.approx((ref.statistic, ref.pvalue))
    p, q = np.maximum([0, 0.5, 0.5], 1e-4), np.maximum([0.7, 0, 0.3], 1e-4)
    assert mix["psi"] == pytest.approx(float(np.sum((q - p) * np.log(q / p))))
    assert "offline_n" in mix["compared"] and "no online traffic included" in mix["compared"]
    d = mix["decomposition"]
    assert d["slices"] == ["lab"] and d["offline"] == pytest.approx(14 / 15)
    assert (d["offline_share"], d["online_share"]) == pytest.approx((0.5, 0.3))
    assert "not the offline test's overall figure" in d["basis"]
    [finding] = [f for f in rank_findings(rows, [mix], [], 0.05) if f["kind"] == "traffic_mix"]
    text = finding["explanation"]
    assert "offline slice(s) 'féld-ü' (50% of the offline mix) get no online traffic" in text
    assert "over the slice(s) both sides have ('lab': 50% of the offline mix" in text
    assert "offline accuracy 93.3% there" in text


def test_another_grouping_of_the_offline_test_stays_out_and_says_why() -> None:
    # 'noise/noisy' regroups examples of the 1,000 already in the printed/handwritten slices.
    offline = {**OFFLINE, "slices": {**OFFLINE["slices"],
                                     "noise/noisy": {"n": 100, "exact_match": 0.5}}}
    cells = _cells({"printed/middle": (400, 20), "handwritten/middle": (1600, 480)})
    _, mix, _ = candidate_divergence("ocr", offline, cells, 0.05, 0.02)
    assert mix["offline_shares"] == {"handwritten/middle": 0.2, "printed/middle": 0.8}
    assert "another grouping" in mix["left_out"]["noise/noisy"]
    assert mix["offline_only"] == {"slices": [], "share": 0.0}
    assert mix["decomposition"]["basis"] == "over every slice of both mixes"
    # Without an overall n a part of the test cannot be told from a regrouping: left out.
    _, bare, _ = candidate_divergence("ocr", {"slices": offline["slices"]}, cells, 0.05, 0.02)
    assert "no overall n" in bare["left_out"]["noise/noisy"]


def test_a_slice_name_is_quoted_as_typed_not_as_python_repr() -> None:
    """A slice ``o'hand\\x`` read ``on slice "o'hand\\\\x"`` (repr's choice of quotes and its
    doubled backslash)."""
    slices = {"printed/middle": OFFLINE["slices"]["printed/middle"],
              "o'hand\\x": OFFLINE["slices"]["handwritten/middle"]}
    findings = _report({**OFFLINE, "slices": slices},
                       {"printed/middle": (1600, 80), "o'hand\\x": (400, 240)})
    text = " ".join(f["explanation"] for f in findings)
    assert "on slice 'o'hand\\x'" in text, text


def test_a_gap_made_by_failed_predictions_says_so_instead_of_advising_relabeling() -> None:
    """An outage of a remote candidate read as an accuracy problem: 'relabel this slice'."""
    offline = {"overall": {"n": 1000, "exact_match": 0.9},
               "slices": {"printed/middle": {"n": 1000, "exact_match": 0.9}}}
    cells = _cells({"printed/middle": (1000, 80)})
    for cell in cells.values():
        cell.add(agg.ERRORS, "", (1000, 250, 250))  # 250 of the 1,000 failed
    rows, mix, shift = candidate_divergence("remote", offline, cells, 0.05, 0.02)
    assert rows[0]["online"]["failed"] == 250
    gap = next(f for f in rank_findings(rows, [mix] if mix else [], [shift] if shift else [],
                                        0.05) if f["kind"] == "accuracy_gap")
    assert gap["explained_by"] == "failures" and "relabel this slice" not in gap["explanation"]
    assert "250 of its 1,000 predictions failed" in gap["explanation"]
    assert "right at most 89.3%" in gap["explanation"]  # (1000 - 80 - 250) / 750
    few = _cells({"printed/middle": (1000, 200)})
    for cell in few.values():
        cell.add(agg.ERRORS, "", (1000, 10, 10))  # a real drop, with a few failures beside it
    rows, _, _ = candidate_divergence("remote", offline, few, 0.05, 0.02)
    gap = next(f for f in rank_findings(rows, [], [], 0.05) if f["kind"] == "accuracy_gap")
    assert gap["explained_by"] is None and "relabel this slice" in gap["explanation"]
