"""The extraction offline test: figures by slice end to end through an OCR candidate, stored with
the candidate and printed by `abvoc pages offline-test`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from app.cli import main
from core.settings import Settings
from core.store import Database, schema
from serving.registry import Registry
from workloads.ocr.bundle import register_trained
from workloads.ocr.pages.offline import format_pages_table, offline_test_pages


def test_figures_by_slice_end_to_end(extractors: dict[str, Path], tiny_ocr: Path) -> None:
    results = offline_test_pages(extractors["pages-xycut"], n=4, seed=0, ocr_folder=tiny_ocr)
    overall = results["overall"]
    assert results["task"] == "formula-extraction" and overall["n"] == 4
    assert overall["formulas"] > 20 and overall["recall_50"] >= 0.9
    for key in ("precision_50", "map", "map_50", "end_to_end_exact", "ocr_on_true_boxes"):
        assert 0.0 <= overall[key] <= 1.0
    # Read after extraction can never beat reading the true boxes by much; both are measured.
    assert overall["end_to_end_exact"] <= overall["ocr_on_true_boxes"] + 0.1
    assert {"columns/1", "columns/2"} <= set(results["slices"])
    assert sum(results["slices"][s]["n"] for s in results["slices"]
               if s.startswith("columns/")) == 4
    table = format_pages_table(results)
    assert table.splitlines()[0].split()[:4] == ["slice", "pages", "formulas", "P@.5"]
    assert "overall" in table and "columns/2" in table


def test_stored_with_the_candidate_and_printed(extractors: dict[str, Path], tiny_ocr: Path,
                                               settings: Settings,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    with Database(settings.database_url) as db:
        schema.upgrade(db)
        registry = Registry(db)
        register_trained(registry, settings.models_dir, extractors["pages-xycut"])
        register_trained(registry, settings.models_dir, tiny_ocr)
    monkeypatch.setenv("ABVOC_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("ABVOC_DATABASE_URL", settings.database_url)
    result = CliRunner().invoke(main, ["pages", "offline-test", "pages-xycut", "--n", "2",
                                       "--ocr", "ocr-small-mixed"])
    assert result.exit_code == 0, result.output
    assert "e2e" in result.output and "overall" in result.output
    with Database(settings.database_url) as db:
        stored = Registry(db).get("pages-xycut").offline_results
    assert stored["overall"]["n"] == 2 and stored["ocr"]["candidate"] == "ocr-small-mixed"
    shown = CliRunner().invoke(main, ["candidates", "show", "pages-xycut"])
    assert shown.exit_code == 0 and "P@.5" in shown.output
    wrong = CliRunner().invoke(main, ["pages", "offline-test", "ocr-small-mixed", "--n", "2"])
    assert wrong.exit_code != 0 and "not a page extraction candidate" in wrong.output
    elsewhere = CliRunner().invoke(main, ["offline-test", "pages-xycut"])
    assert elsewhere.exit_code != 0
    assert "test it on generated pages with `abvoc pages offline-test pages-xycut`" in \
        elsewhere.output


def test_pages_train_registers_both_and_is_repeatable(settings: Settings,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    with Database(settings.database_url) as db:
        schema.upgrade(db)
    monkeypatch.setenv("ABVOC_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("ABVOC_DATABASE_URL", settings.database_url)
    args = ["pages", "train", "--n-train", "4", "--n-validation", "2", "--epochs", "1", "--json"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    built = json.loads(first.stdout)  # the JSON alone; the progress is on stderr
    assert [b["name"] for b in built] == ["pages-xycut", "pages-fcn"]
    second = CliRunner().invoke(main, args)
    assert second.exit_code == 0, second.output
    rebuilt = json.loads(second.stdout)
    # Same seed, same pages, same weights: the same versions, found already registered.
    assert [b["version"] for b in rebuilt] == [b["version"] for b in built]
    with Database(settings.database_url) as db:
        names = sorted(c.name for c in Registry(db).list())
    assert names == ["pages-fcn", "pages-xycut"]
