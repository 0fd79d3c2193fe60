"""`abvoc capacity`: a candidate that cannot be timed is skipped, not fatal; --gpu-mem needs a
unit and a plausible size; CPU timings say so; listing the commands does not load torch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from app.cli import main
from core.settings import load_settings
from core.store import Database
from serving.registry import Registry
from tests.support.heavy_imports import heavy_modules_after


@pytest.fixture
def cli(fresh_cli: CliRunner) -> CliRunner:
    return fresh_cli


def _registry(tmp_path: Path) -> Registry:
    settings = load_settings(env={"ABVOC_DATA_DIR": str(tmp_path / "data")})
    return Registry(Database(settings.database_url))


def _with_a_timed_candidate(tmp_path: Path) -> Registry:
    """A registry holding ocr-fast, whose offline results give its size and batch latencies."""
    registry = _registry(tmp_path)
    registry.register("ocr-fast", "1")
    registry.set_offline_results("ocr-fast", "1", {"model": {"size_bytes": 10**9},
                                                   "latency_by_batch": {"1": 5, "8": 20}})
    return registry


class _OnnxPipeline:
    """What Pipeline.load gives for ocr-mobile-int8 / ocr-onegraph: no networks to load."""

    ships_onnx = True

    def networks(self) -> dict[str, object]:
        return {}


def test_an_untimeable_candidate_is_skipped_and_the_others_planned(
        cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from workloads.ocr.pipeline import Pipeline

    registry = _with_a_timed_candidate(tmp_path)
    folder = tmp_path / "int8"
    folder.mkdir()
    (folder / "candidate.json").write_text("{}")
    registry.register("ocr-mobile-int8", "1", artifacts=str(folder), backend="onnxruntime")
    monkeypatch.setattr(Pipeline, "load", classmethod(lambda cls, *a, **k: _OnnxPipeline()))
    result = cli.invoke(main, ["capacity", "--gpu-mem", "10GB", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [row["candidate"] for row in data["rows"]] == ["ocr-fast"]
    assert "ONNX Runtime" in data["skipped"]["ocr-mobile-int8"]
    assert "skipped ocr-mobile-int8" in result.output


@pytest.mark.parametrize(("spec", "words"), [("{", "Expecting property name"),
                                             ("{}", "'recognizer'")])
def test_a_candidate_whose_trained_files_are_damaged_is_skipped_and_the_others_planned(
        cli: CliRunner, tmp_path: Path, spec: str, words: str) -> None:
    """A spec cut short or edited by hand (as a weights file gone or cut short) was a
    traceback from Pipeline.load (exit 1) that planned no candidate at all."""
    registry = _with_a_timed_candidate(tmp_path)
    folder = tmp_path / "damaged"
    folder.mkdir()
    (folder / "candidate.json").write_text(spec)
    registry.register("ocr-damaged", "1", artifacts=str(folder))
    result = cli.invoke(main, ["capacity", "--gpu-mem", "10GB", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [row["candidate"] for row in data["rows"]] == ["ocr-fast"]
    skipped = data["skipped"]["ocr-damaged"]
    assert "cannot be loaded" in skipped and words in skipped and "\n" not in skipped


@pytest.mark.parametrize(("size", "words"), [
    ("10", "has no unit"), ("8000", "has no unit"),
    ("99999999999999999999TB", "not the memory of one GPU"), ("10KB", "not the memory of one GPU"),
])
def test_gpu_mem_needs_a_unit_and_a_plausible_size(cli: CliRunner, size: str, words: str) -> None:
    result = cli.invoke(main, ["capacity", "--gpu-mem", size, "--profiles", "x.json"])
    assert result.exit_code == 2, result.output
    assert words in result.output and "Traceback" not in result.output


def test_an_unknown_backend_is_refused_before_any_candidate_is_loaded(
        cli: CliRunner, tmp_path: Path) -> None:
    """--backend foo was tried on each candidate, each skipped, then "no registered candidate
    could be profiled: pass --profiles FILE", which did not name the typo."""
    registry = _registry(tmp_path)
    folder = tmp_path / "trained"
    folder.mkdir()
    (folder / "candidate.json").write_text("{}")
    registry.register("ocr-slow", "1", artifacts=str(folder))
    result = cli.invoke(main, ["capacity", "--gpu-mem", "10GB", "--backend", "fo"])
    assert result.exit_code == 2, result.output
    assert "'--backend': 'fo' is not one of 'torch', 'onnxruntime', 'tensorrt'" in result.output
    assert "measuring" not in result.output


def test_cpu_timings_are_marked_in_the_table(cli: CliRunner, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from app.commands import capacity

    registry = _registry(tmp_path)
    registry.register("ocr-cpu", "1", artifacts=str(tmp_path))
    monkeypatch.setattr(capacity, "measure_candidate", lambda *a: {
        "latency_by_batch": {"1": 50.0}, "model_size_bytes": 10**6, "measured_on_cpu": True})
    result = cli.invoke(main, ["capacity", "--gpu-mem", "10GB"])
    assert result.exit_code == 0, result.output
    assert "latency measured on the CPU" in result.output
    assert "measured on the CPU (no GPU here)" in result.output


def test_listing_the_commands_does_not_load_torch() -> None:
    assert heavy_modules_after(["--help"], ["capacity", "--help"]) == []
