"""The Experiments page's sample-ratio banner agrees with its "Sample-ratio check" line: a
mismatch within some slices (Holm-adjusted across them) is a warning naming them, not the red
"untrustworthy" alert, while the overall check is fine; tiny slices are not tested."""

from __future__ import annotations

from core.store.db import Database
from dashboards import data
from dashboards.pages import experiments
from tests.evaluation.helpers import add_experiment, apply, prediction
from tests.support.dash_tree import find_component

PER_SLICE = {"a": {"control": 150, "treatment": 50}, "b": {"control": 50, "treatment": 150},
             "c": {"control": 100, "treatment": 100}, "tiny": {"control": 7}}


def _text(component: object) -> str:
    """The text a built component shows."""
    children = getattr(component, "children", None)
    if isinstance(children, str) or children is None:
        return children or ""
    parts = children if isinstance(children, list) else [children]
    return "".join(c if isinstance(c, str) else _text(c) for c in parts)


def test_slice_mismatch_is_a_warning_that_agrees_with_the_srm_line(db: Database) -> None:
    exp = add_experiment(db)
    cand = {"control": "cand-a", "treatment": "cand-b"}
    apply(db, [prediction(f"{s}-{arm}-{i}", experiment_id=exp, arm=arm, candidate=cand[arm],
                          slice_=s, unit_id=f"{s}-{arm}-u{i}")
               for s, counts in PER_SLICE.items() for arm, n in counts.items()
               for i in range(n)])
    page = experiments.body(db, exp, "all", data.Window())
    # Old code: the red alert said "untrustworthy" while the line below said "ok".
    assert find_component(page, "exp-srm-alert") is None
    warning = find_component(page, "exp-srm-warning")
    assert warning is not None and "within slices a, b" in _text(warning)
    line = _text(find_component(page, "exp-srm"))
    assert ": ok." in line and "MISMATCH" not in line
    assert "Slices: 3 tested" in line and "1 too small" in line
    assert "Mismatch within: a, b (a warning)" in line

    in_a = _text(find_component(experiments.body(db, exp, "a", data.Window()), "exp-srm"))
    assert "Holm-adjusted p =" in in_a and "MISMATCH within this slice" in in_a
    tiny = _text(find_component(experiments.body(db, exp, "tiny", data.Window()), "exp-srm"))
    assert "not tested (too few units" in tiny


def test_the_srm_line_names_the_exact_test_it_reports(db: Database) -> None:
    """Under 5 units expected per arm the check is the exact binomial test: the line named
    chi-square and showed its statistic (3) beside the binomial's p (0.25; chi-square's is
    0.083). scipy: binomtest(3, 3, 0.5).pvalue == 0.25."""
    exp = add_experiment(db)
    apply(db, [prediction(f"few-{i}", experiment_id=exp, unit_id=f"few-u{i}")
               for i in range(3)])
    line = _text(find_component(experiments.body(db, exp, "all", data.Window()), "exp-srm"))
    assert "Sample-ratio check (exact binomial, all units): p = 0.25 against" in line
    assert "chi-square" not in line and "statistic" not in line
