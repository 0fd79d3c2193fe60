"""An offline test counts the examples a candidate fails on as online counts failed
predictions (wrong in accuracy and exact match, outside the answered-only figures, in
`failed`), instead of refusing a candidate that fails on a few inputs any figure; a look at
another dataset can leave the stored results alone; imported overall figures must be what
their slices can make. Found by a pass over the relabel-to-next-dataset loop."""

from __future__ import annotations

import json
import math
from pathlib import Path

from click.testing import CliRunner

from app.cli import main
from serving.bundles import register_bundle
from serving.bundles.offline import offline_test
from serving.registry import Registry
from tests.serving.test_bundle_offline import _python_bundle

LINES = [{"inputs": {"words": ["a", "b"]}, "label": "a b", "slice": "s"},   # right
         {"inputs": {"words": ["boom"]}, "label": "boom", "slice": "s"},    # fails
         {"inputs": {"words": ["c"]}, "label": "d", "slice": "t"},          # wrong
         {"inputs": {"words": ["e"]}, "label": "e", "slice": "t"}]          # right


def _dataset(tmp_path: Path, lines: list[dict], name: str = "set.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def test_failures_count_as_wrong_answers_and_are_named(registry: Registry, models: Path,
                                                       tmp_path: Path) -> None:
    info = register_bundle(registry, models, _python_bundle(tmp_path, "text"))
    results = offline_test(registry, info.name, _dataset(tmp_path, LINES))
    overall = results["overall"]
    assert overall["n"] == 4 and overall["failed"] == 1
    assert overall["exact_match"] == 0.5  # 2 right of 4: the failure is no right answer
    # The distance needs an answer: over the 3 answered ("d" for "c": one word of one wrong).
    assert overall["token_edit_distance"] == round(1 / 3, 4)
    assert results["slices"]["s"] == {**results["slices"]["s"], "n": 2, "failed": 1,
                                      "exact_match": 0.5, "token_edit_distance": 0.0}
    assert results["slices"]["t"]["failed"] == 0
    assert results["failures"] == ["line 2: the candidate failed: ValueError: cannot read boom"]
    assert registry.get(info.name).offline_results == json.loads(json.dumps(results))


def test_number_figures_are_over_the_answered_examples(registry: Registry, models: Path,
                                                       tmp_path: Path) -> None:
    info = register_bundle(registry, models, _python_bundle(tmp_path, "number"))
    lines = [{"inputs": {"words": ["abc"]}, "label": 1},      # error +2
             {"inputs": {"words": ["boom"]}, "label": 4},     # fails
             {"inputs": {"words": ["a"]}, "label": 3}]        # error -2
    overall = offline_test(registry, info.name, _dataset(tmp_path, lines))["overall"]
    assert overall == {**overall, "n": 3, "failed": 1, "mae": 2.0, "rmse": 2.0,
                       "mean_error": 0.0}


def test_no_store_prints_the_figures_and_keeps_the_stored_ones(
        registry: Registry, models: Path, tmp_path: Path) -> None:
    info = register_bundle(registry, models, _python_bundle(tmp_path, "text"))
    stored = offline_test(registry, info.name, _dataset(tmp_path, LINES[2:], "first.jsonl"))
    hard = _dataset(tmp_path, LINES, "hard.jsonl")
    env = {"ABVOC_DATA_DIR": str(tmp_path / "data"), "ABVOC_DATABASE_URL": registry.db.url}
    shown = CliRunner().invoke(main, ["offline-test", info.name, "--dataset", str(hard),
                                     "--no-store"], env=env)
    assert shown.exit_code == 0, shown.output
    assert "failed: 1 of 4 examples got no answer" in shown.output
    assert "line 2: the candidate failed: ValueError: cannot read boom" in shown.output
    assert registry.get(info.name).offline_results == json.loads(json.dumps(stored))
    refused = CliRunner().invoke(main, ["offline-test", info.name, "--no-store"], env=env)
    assert refused.exit_code == 2 and "--no-store goes with --dataset" in refused.output


def test_the_label_shares_line_shows_the_largest_shares() -> None:
    from app.commands.models import _shares_line

    shares = {f"c{i}": 0.0 for i in range(5000)} | {"c7": 0.75, "c9": 0.25}
    line = _shares_line(shares)
    assert line == "c7 0.750, c9 0.250 (and 4998 classes at 0)"
    many = {f"c{i:02d}": 1 / 40 for i in range(40)}
    shown, rest = _shares_line(many).split(" (")
    assert shown.split(", ")[:2] == ["c00 0.025", "c01 0.025"]  # ties in name order
    assert len(shown.split(", ")) == 20 and rest == "and 20 more classes)"
    assert math.isclose(sum(many.values()), 1)
