"""Offline results computed elsewhere, imported after the same checks as a run's: stored in the
shape the divergence report reads; every refusal names the key and keeps what was stored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from serving.bundles.manifest import OutputSpec
from serving.bundles.offline import import_results
from serving.bundles.offline_metrics import OfflineError, check_imported
from serving.registry import Registry

IMPORTED = {"slices": {
    "lab": {"n": 300, "accuracy": 0.96, "label_shares": {"setosa": 0.5, "versicolor": 0.25,
                                                         "virginica": 0.25}},
    "field": {"n": 100, "accuracy": 0.8, "label_shares": {"setosa": 0.1, "versicolor": 0.1,
                                                          "virginica": 0.8}}}}


def imported(registry: Registry, name: str, tmp_path: Path, data: object) -> dict:
    path = tmp_path / "results.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return import_results(registry, name, path)


def test_import_stores_the_same_shape(registry: Registry, iris: str, tmp_path: Path) -> None:
    results = imported(registry, iris, tmp_path, IMPORTED)
    overall = results["overall"]
    assert overall["n"] == 400 and overall["accuracy"] == overall["exact_match"] == 0.92
    assert results["label_shares"] == {"setosa": 0.4, "versicolor": 0.2125, "virginica": 0.3875}
    assert results["slices"]["field"] == {"n": 100, "accuracy": 0.8, "exact_match": 0.8,
                                          "label_shares": IMPORTED["slices"]["field"][
                                              "label_shares"]}
    assert results["test_set"]["source"] == "import"
    assert registry.get(iris).offline_results == results


def _with(path: tuple[str, ...], value: object) -> dict:
    data = json.loads(json.dumps(IMPORTED))
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


IMPORT_REFUSALS = [
    ("{", r"results.json is not JSON"),
    ([], r"must hold a JSON object"),
    ({"slices": {}}, r"'slices' must be an object"),
    (_with(("extra",), 1), r"unknown key\(s\) 'extra'"),
    (_with(("slices", "lab", "accuracy"), KeyError), r"slices\['lab'\].accuracy is missing"),
    (_with(("slices", "lab", "accuracy"), 1.5), r"slices\['lab'\].accuracy is a share between"),
    (_with(("slices", "lab", "n"), 0), r"slices\['lab'\].n must be a positive whole number"),
    (_with(("slices", "lab", "mae"), 0.1), r"unknown key\(s\) 'mae' for a 'label' output"),
    (_with(("slices", "lab", "label_shares", "rose"), 0.1), r"names \['rose'\], which are not"),
    (_with(("slices", "lab", "label_shares", "setosa"), 0.9), r"must add up to 1, got 1.4000"),
    (_with(("slices", "all"), {"n": 1, "accuracy": 1}), r"slice name 'all' must be"),
    (_with(("slices", "overall"), {"n": 1, "accuracy": 1}), r"slice name 'overall' must be"),
    (_with(("mix_slices",), ["moon"]), r"'mix_slices' must list some of the slices"),
    (_with(("slices", "lab", "accuracy"), float("nan")), r"is not JSON|must be a finite number"),
    (_with(("slices", "\ud800"), {"n": 10, "accuracy": 0.9}),
     r"^slice name '\\ud800' must be valid Unicode text"),
    (_with(("slices", "a\x00"), {"n": 10, "accuracy": 0.9}), r"^slice name 'a\\x00' must not"),
    (_with(("slices", "a\x07b"), {"n": 10, "accuracy": 0.9}), r"^slice name 'a\\x07b' must"),
    (_with(("notes",), "fine \ud800"), r"^'notes' must be valid Unicode text"),
    (_with(("notes",), "a\x00b"), r"^'notes' must not contain NUL"),
    (_with(("mix_slices",), [["lab"]]), r"'mix_slices' must list some of the slices"),
    (_with(("mix_slices",), [{"a": 1}]), r"'mix_slices' must list some of the slices"),
    ('{"slices": ' + "[" * 3000 + "]" * 3000 + "}", r"^results.json is nested too deeply$"),
    (_with(("overall",), {"n": 3, "accuracy": 0.9}),
     r"^the slices' n add up to 400, more than the overall n of 3: each example belongs"),
    (_with(("overall",), {"n": 400, "accuracy": 0.2}),
     r"^overall.accuracy is 0.2, but its slices make 0.9200 of the overall n of 400; give"),
    (_with(("overall",), {"n": 1000, "accuracy": 0.2}),
     r"^overall.accuracy is 0.2, but its slices make 0.3680 to 0.9680 of the overall n of"),
    (_with(("slices", "lab", "n"), 10**29), r"^results.json: slices\['lab'\]\['n'\] must be a"
                                            r" finite number of at most 2\^53 .*\(30 digits\)$"),
]


@pytest.mark.parametrize(("data", "fragment"), IMPORT_REFUSALS,
                         ids=[c[1][:32] for c in IMPORT_REFUSALS])
def test_import_refusals_name_the_key_and_keep_what_was_stored(
        registry: Registry, iris: str, tmp_path: Path, data: object, fragment: str) -> None:
    before = imported(registry, iris, tmp_path, IMPORTED)
    with pytest.raises(OfflineError, match=fragment):
        imported(registry, iris, tmp_path, data)
    assert registry.get(iris).offline_results == before


def test_an_rmse_too_large_to_combine_is_a_clear_refusal() -> None:
    """Not an OverflowError traceback."""
    rows = {"lab": {"n": 100, "mae": 1e200, "rmse": 1e201},
            "field": {"n": 100, "mae": 1.0, "rmse": 1.5}}
    with pytest.raises(OfflineError, match="'rmse' is too large to combine"):
        check_imported(OutputSpec("number"), {"slices": rows})
    fine = check_imported(OutputSpec("number"), {"slices": {
        "lab": {"n": 100, "mae": 1.0, "rmse": 2.0}, "field": {"n": 100, "mae": 3.0,
                                                              "rmse": 4.0}}})
    assert fine["overall"]["mae"] == 2.0 and fine["overall"]["rmse"] == pytest.approx(10 ** 0.5,
                                                                              abs=1e-4)


def test_figures_over_the_answered_examples_combine_by_them() -> None:
    """An error needs an answer: a slice of 10 with 9 failures weighs 1 in the overall MAE,
    as the built-in test computes it (it weighed 10: MAE 50 where the answers make 9.09)."""
    made = check_imported(OutputSpec("number"), {"slices": {
        "a": {"n": 10, "failed": 9, "mae": 100, "rmse": 100, "mean_error": 100},
        "b": {"n": 10, "failed": 0, "mae": 0, "rmse": 0, "mean_error": 0}}})["overall"]
    assert made["failed"] == 9
    assert made["mae"] == pytest.approx(100 / 11, abs=1e-4)
    assert made["mean_error"] == pytest.approx(100 / 11, abs=1e-4)
    assert made["rmse"] == pytest.approx((100 ** 2 / 11) ** 0.5, abs=1e-4)
    label = OutputSpec("label", classes=("cat", "dog"))
    shares = check_imported(label, {"slices": {
        "a": {"n": 10, "failed": 8, "accuracy": 0.2, "output_shares": {"cat": 1, "dog": 0}},
        "b": {"n": 10, "failed": 0, "accuracy": 0.5, "output_shares": {"cat": 0, "dog": 1}}}})
    assert shares["overall"]["output_shares"] == {"cat": pytest.approx(2 / 12, abs=1e-6),
                                                  "dog": pytest.approx(10 / 12, abs=1e-6)}
    assert shares["overall"]["accuracy"] == pytest.approx(0.35)  # a share right counts all n


NUMBER_ROWS = {"a": {"n": 10, "mae": 1, "rmse": 1}, "b": {"n": 10, "mae": 2, "rmse": 2}}


@pytest.mark.parametrize(("output", "data", "fragment"), [
    (OutputSpec("label", classes=("cat", "dog")),
     {"slices": {"a": {"n": 10, "failed": 10, "accuracy": 1.0}}},
     r"accuracy 1 is more than the 0 answered of 10 examples can be right"),
    (OutputSpec("number"), {"slices": NUMBER_ROWS, "overall": {"n": 20, "mae": 1000,
                                                                "rmse": 1000}},
     r"overall.mae is 1000.*the slices, which hold the whole test set, make 1.5"),
    (OutputSpec("number"), {"slices": {"a": {"n": 10, "mae": 1, "rmse": 1, "mean_error": 5}}},
     r"mean_error 5 is larger in size than mae 1"),
    (OutputSpec("number"), {"slices": {"a": {"n": 10, "mae": 1, "rmse": 100}}},
     r"rmse 100 is more than mae 1 times the square root of the 10 answered examples"),
    (OutputSpec("number"), {"slices": {"a": {"n": 10, "mae": 1, "rmse": 1,
                                             "latency_p50_ms": 50, "latency_p99_ms": 1}}},
     r"latency_p50_ms 50 is above latency_p99_ms"),
    (OutputSpec("label", classes=("cat", "dog")),
     {"slices": {"a": {"n": 2, "accuracy": 0.5, "label_shares": {"cat": 0.5, "dog": 0.5}}},
      "label_shares": {"cat": 1.0, "dog": 0.0}},
     r"'label_shares' and the overall row's label_shares differ"),
    (OutputSpec("latex"), {"slices": {"a": {"n": 10, "exact_match": 1.0,
                                            "token_edit_distance": 0.5}}},
     r"token_edit_distance 0.5 is more than the 0 inexact of the 10 answered examples"),
    (OutputSpec("text"), {"slices": {"a": {"n": 10, "failed": 2, "exact_match": 0.6,
                                           "token_edit_distance": 0.3}}},
     r"token_edit_distance 0.3 is more than the 2 inexact of the 8 answered examples"),
    (OutputSpec("number"), {"slices": NUMBER_ROWS, "mix_slices": ["a", "a"]},
     r"'mix_slices' must list some of the slices 'a', 'b', each once"),
])
def test_figures_no_set_of_answers_gives_together_are_refused(
        output: OutputSpec, data: dict, fragment: str) -> None:
    with pytest.raises(OfflineError, match=fragment):
        check_imported(output, data)


def test_imported_failures_are_said_without_a_dangling_list() -> None:
    """Imports carry no failure messages: the line ended in 'first: ' and nothing."""
    from app.commands.models import format_offline

    results = check_imported(OutputSpec("number"), {"slices": {
        "a": {"n": 10, "failed": 9, "mae": 1, "rmse": 1}}})
    line = next(x for x in format_offline(results).splitlines() if x.startswith("failed:"))
    assert line.endswith("as online)") and "first" not in line


@pytest.mark.parametrize(("output", "row", "key"), [
    (OutputSpec("number"), {"mae": 1, "rmse": 1}, "mae"),
    (OutputSpec("number"), {"mae": None, "rmse": None, "mean_error": 0.5}, "mean_error"),
    (OutputSpec("text"), {"exact_match": 0, "token_edit_distance": 0.5}, "token_edit_distance"),
])
def test_a_figure_over_no_answer_is_refused(output: OutputSpec, row: dict, key: str) -> None:
    """Every example failed: an MAE (or edit distance) of no answers was stored, and the
    divergence report held the online MAE against it."""
    with pytest.raises(OfflineError, match=rf"^slices\['a'\].{key} is .*, but every example "
                                           r"failed \(failed = n = 10\)"):
        check_imported(output, {"slices": {"a": {"n": 10, "failed": 10, **row}}})


def test_a_slice_with_no_answer_holds_null_and_weighs_nothing() -> None:
    """As the built-in test writes such a slice: its MAE and RMSE null, and the overall's
    from the answered slices alone (the nulls stopped the import with a TypeError)."""
    for given in ({"mae": None, "rmse": None}, {}):
        results = check_imported(OutputSpec("number"), {"slices": {
            "a": {"n": 10, "failed": 10, **given},
            "b": {"n": 10, "failed": 0, "mae": 2, "rmse": 3}}})
        assert results["slices"]["a"] == {"n": 10, "failed": 10, "mae": None, "rmse": None}
        overall = results["overall"]
        assert [overall[k] for k in ("n", "failed", "mae", "rmse")] == [20, 10, 2, 3]
