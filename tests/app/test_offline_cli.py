"""`abvoc offline-test NAME --dataset` and `abvoc candidates offline-results` from the command
line, on SQLite and PostgreSQL: a progress line on stderr, results by slice in the registry, and
refusals that exit non-zero with a message saying what to fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from app.cli import main
from core.settings import Settings
from core.store import Database
from serving.registry import Registry
from tests.support.bundles import EXAMPLE


@pytest.fixture
def cli(cli: CliRunner) -> CliRunner:
    """The command line on a migrated store with the example bundle registered."""
    assert cli.invoke(main, ["candidates", "register", str(EXAMPLE)]).exit_code == 0
    return cli


def stored(settings: Settings) -> dict:
    with Database(settings.database_url) as database:
        return Registry(database).get("iris-onnx").offline_results


def test_offline_test_with_own_dataset(cli: CliRunner, settings: Settings) -> None:
    dataset = EXAMPLE / "offline.jsonl"
    result = cli.invoke(main, ["offline-test", "iris-onnx", "--dataset", str(dataset), "--json"])
    assert result.exit_code == 0, result.output
    assert "iris-onnx on offline.jsonl [" in result.stderr and "60/60" in result.stderr
    results = json.loads(result.stdout)
    assert results["overall"]["n"] == 60 and set(results["slices"]) == {"field", "lab"}
    checks = results.pop("requirement_checks")  # printed with the results, not stored
    assert stored(settings) == results
    size = results["model"]["size_mb"]
    assert checks == [{"requirement": "model_size_mb", "limit": 1, "measured": size,
                       "passed": size <= 1}] and 0 < size < 1
    table = cli.invoke(main, ["candidates", "show", "iris-onnx"]).stdout
    assert "accuracy" in table and "field" in table and "label shares: setosa" in table
    listed = cli.invoke(main, ["candidates", "list"]).stdout
    assert f"{results['overall']['accuracy']:.3f}" in listed

    used = cli.invoke(main, ["offline-test", "iris-onnx", "--dataset", str(dataset), "--n", "9"])
    assert used.exit_code == 2 and "--n is for the built-in test set" in used.output


def test_offline_results_import_and_refusal(cli: CliRunner, settings: Settings,
                                            tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"slices": {"lab": {"n": 50, "accuracy": 0.9},
                                           "field": {"n": 50, "accuracy": 0.7}}}))
    result = cli.invoke(main, ["candidates", "offline-results", "iris-onnx", str(good)])
    assert result.exit_code == 0, result.output
    assert "imported offline results for iris-onnx" in result.stdout
    assert stored(settings)["overall"] == {"n": 100, "accuracy": 0.8, "exact_match": 0.8}

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"slices": {"lab": {"n": 50, "exact": 0.9}}}))
    result = cli.invoke(main, ["candidates", "offline-results", "iris-onnx", str(bad)])
    assert result.exit_code == 2
    assert "slices['lab']: unknown key(s) ['exact']" in result.stderr
    assert stored(settings)["overall"]["n"] == 100  # the earlier import stands

    missing = cli.invoke(main, ["offline-test", "nope", "--dataset", str(good)])
    assert missing.exit_code == 2 and "candidate 'nope' is not registered" in missing.stderr
