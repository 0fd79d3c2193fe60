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
from tests.support.bundles import EXAMPLE, copy_example, edit
from tests.support.text_bundles import onnx_echo_bundle


@pytest.fixture
def cli(cli: CliRunner) -> CliRunner:
    """The command line on a migrated store with the example bundle registered."""
    assert cli.invoke(main, ["candidates", "register", str(EXAMPLE)]).exit_code == 0
    return cli


def stored(settings: Settings, version: str | None = None) -> dict:
    with Database(settings.database_url) as database:
        return Registry(database).get("iris-onnx", version).offline_results


def test_offline_test_with_own_dataset(cli: CliRunner, settings: Settings) -> None:
    dataset = EXAMPLE / "offline.jsonl"
    result = cli.invoke(main, ["offline-test", "iris-onnx", "--dataset", str(dataset), "--json"])
    assert result.exit_code == 0, result.output
    # Off a terminal, progress is plain lines at each tenth, no carriage-return redraws.
    progress = [line for line in result.stderr.splitlines() if "offline.jsonl" in line]
    assert progress[0] == "iris-onnx on offline.jsonl: 6/60 (10%)" and len(progress) == 10
    assert progress[-1].endswith("60/60 (100%)") and "\r" not in result.stderr
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
    alone = cli.invoke(main, ["offline-test", "iris-onnx", "--version", "1"])
    assert alone.exit_code == 2 and "--version goes with --dataset" in alone.output


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
    assert "slices['lab']: unknown key(s) 'exact'" in result.stderr
    assert stored(settings)["overall"]["n"] == 100  # the earlier import stands

    missing = cli.invoke(main, ["offline-test", "nope", "--dataset", str(good)])
    assert missing.exit_code == 2 and "candidate 'nope' is not registered" in missing.stderr


def test_candidates_list_aligns_any_version_and_names_each_type_s_headline(
        cli: CliRunner, settings: Settings, tmp_path: Path) -> None:
    long_version = copy_example(tmp_path)
    edit(long_version, 'version = "1"', 'version = "2026.12.03-rc1+build.4711"')
    assert cli.invoke(main, ["candidates", "register", str(long_version)]).exit_code == 0
    dataset = EXAMPLE / "offline.jsonl"
    assert cli.invoke(main, ["offline-test", "iris-onnx", "--dataset", str(dataset),
                             "--version", "1"]).exit_code == 0
    assert cli.invoke(main, ["candidates", "retire", "iris-onnx", "--version", "1"]).exit_code == 0
    header, *rows = cli.invoke(main, ["candidates", "list", "--all"]).stdout.splitlines()
    assert len(rows) == 2
    # Every column starts where its header does, whatever the length of a version.
    for column in ("version", "backend", "offline", "description"):
        assert {row[header.index(column) - 2:header.index(column)] for row in rows} == {"  "}
    accuracy = stored(settings, "1")["overall"]["accuracy"]
    first = next(r for r in rows if r.split()[1] == "1")
    assert f"accuracy {accuracy:.3f}" in first and "(retired)" in first
    assert "(retired)" not in next(r for r in rows if "rc1" in r)
    listed = cli.invoke(main, ["candidates", "list"]).stdout
    assert "rc1+build.4711" in listed and "(retired)" not in listed


def test_a_bundle_s_own_prints_leave_json_on_stdout_parseable(cli: CliRunner,
                                                              tmp_path: Path) -> None:
    """A stage that prints (at import or per call) writes to stderr: stdout is the result."""
    bundle = copy_example(tmp_path)
    post = bundle / "post.py"
    post.write_text("print('post loaded')\n" + post.read_text().replace(
        "    probabilities = tensors", "    print('to_label called')\n    probabilities = tensors"))
    edit(bundle, 'version = "1"', 'version = "2"')
    registered = cli.invoke(main, ["candidates", "register", str(bundle), "--json"])
    assert registered.exit_code == 0, registered.output
    assert json.loads(registered.stdout)["version"] == "2"
    tested = cli.invoke(main, ["offline-test", "iris-onnx", "--dataset",
                               str(EXAMPLE / "offline.jsonl"), "--json"])
    assert tested.exit_code == 0, tested.output
    assert json.loads(tested.stdout)["overall"]["n"] == 60
    assert "post loaded" in tested.stderr and "to_label called" in tested.stderr


def test_a_text_file_that_is_not_utf8_is_the_datasets_to_fix(cli: CliRunner,
                                                             tmp_path: Path) -> None:
    """Not "the candidate failed": the file and line, and what to do."""
    bundle = onnx_echo_bundle(tmp_path / "bundles")
    assert cli.invoke(main, ["candidates", "register", str(bundle)]).exit_code == 0
    (tmp_path / "note.txt").write_bytes(b"\xffhello")
    dataset = tmp_path / "texts.jsonl"
    dataset.write_text(json.dumps({"inputs": {"text": {"file": "note.txt"}},
                                   "label": "hello"}) + "\n")
    result = cli.invoke(main, ["offline-test", "echo", "--dataset", str(dataset)])
    assert result.exit_code != 0
    assert "candidate failed" not in result.output
    assert ("texts.jsonl line 1: input 'text' (file 'note.txt') holds a value that is not UTF-8 "
            "text (item 0, byte 0); this candidate's model takes text: save the file as UTF-8 "
            "text") in result.output, result.output
