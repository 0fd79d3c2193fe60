"""`abvoc relabel export --candidate` makes a dataset that candidate's `abvoc offline-test`
reads, says so when an export mixes candidates whose inputs differ, refuses an unknown
candidate; a stage queue's whole-input lines (`stage_sample`) are read by the offline test too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from app.cli import main
from core.settings import Settings
from core.store import Database
from tests.feedback.test_typed_export import item
from tests.support.bundles import EXAMPLE

IRIS = ["setosa", "versicolor", "virginica"]


@pytest.fixture
def cli(cli: CliRunner) -> CliRunner:
    """The command line on a migrated store with the example bundle (V2 tensors) registered."""
    assert cli.invoke(main, ["candidates", "register", str(EXAMPLE)]).exit_code == 0
    return cli


def offline_test(cli: CliRunner, manifest: Path) -> dict:
    result = cli.invoke(main, ["offline-test", "iris-onnx", "--dataset", str(manifest),
                               "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_export_one_candidate_for_its_offline_test(cli: CliRunner, settings: Settings,
                                                   tmp_path: Path) -> None:
    with Database(settings.database_url) as db:
        for n in range(3):
            item(db, "iris-onnx", n, label=IRIS[n], output="setosa", image=False)
        item(db, "tagger", 0, label='"big"')  # an image input: no iris can read it
    out = tmp_path / "datasets"
    mixed = cli.invoke(main, ["relabel", "export", "all", "--out", str(out)])
    assert mixed.exit_code == 0, mixed.output
    assert "4 examples" in mixed.output
    assert "warning: the examples come from candidates with different inputs" in mixed.output
    assert "iris-onnx: features" in mixed.output and "tagger: image" in mixed.output
    assert "--candidate NAME" in mixed.output
    refused = cli.invoke(main, ["offline-test", "iris-onnx", "--dataset",
                                str(out / "all" / "v1" / "manifest.jsonl")])
    assert refused.exit_code != 0  # what the warning was about
    one = cli.invoke(main, ["relabel", "export", "iris", "--out", str(out), "--candidate",
                            "iris-onnx", "--json"])
    assert one.exit_code == 0, one.output
    exported = json.loads(one.stdout)
    assert exported["examples"] == 3 and "warning" not in exported
    results = offline_test(cli, Path(exported["path"]) / "manifest.jsonl")
    assert results["overall"]["n"] == 3
    unknown = cli.invoke(main, ["relabel", "export", "x", "--out", str(out), "--candidate",
                                "iris"])
    assert unknown.exit_code == 2 and "unknown candidate 'iris'" in unknown.output
    assert "Traceback" not in unknown.output


def test_a_stage_queue_export_reads_in_the_offline_test(cli: CliRunner, settings: Settings,
                                                         tmp_path: Path) -> None:
    with Database(settings.database_url) as db:
        for n in range(2):
            item(db, "iris-onnx", n, label=IRIS[n], output="setosa", image=False,
                 queue="stage:draft")
    out = tmp_path / "datasets"
    exported = cli.invoke(main, ["relabel", "export", "draft", "--out", str(out), "--queue",
                                 "stage:draft", "--json"])
    assert exported.exit_code == 0, exported.output
    manifest = Path(json.loads(exported.stdout)["path"]) / "manifest.jsonl"
    lines = [json.loads(x) for x in manifest.read_text().splitlines()]
    assert len(lines) == 2 and all("stage_sample" in x for x in lines)
    assert offline_test(cli, manifest)["overall"]["n"] == 2
