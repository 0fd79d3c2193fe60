"""Sizes that only a typo gives: `abvoc train --n-train`, `abvoc offline-test --n`, the
gameplay workload's match counts and the page counts of `abvoc pages` are refused at once (exit
2, the range), not generated: each formula, logged match or page is held in memory, so 10^10 of
them ran on for hours towards running out of memory, printing only "generating 10000000000
training formulas"."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from app.cli import main

TYPO = "10000000000"


@pytest.mark.parametrize("args", [
    ["train", "ocr-small-printed", "--n-train", TYPO],
    ["offline-test", "ocr-small-mixed", "--n", TYPO],
    ["workloads", "gameplay", "build", "--out", "{out}", "--train-matches", TYPO],
    ["workloads", "gameplay", "build", "--out", "{out}", "--heldout-matches", TYPO],
    ["workloads", "gameplay", "build", "--out", "{out}", "--eval-matches", TYPO],
    ["workloads", "gameplay", "play", ".", "--matches", TYPO],
])
def test_a_typo_sized_run_is_refused_before_any_work(fresh_cli: CliRunner, tmp_path: Path,
                                                     args: list[str]) -> None:
    out = tmp_path / "out"
    result = fresh_cli.invoke(main, [a.format(out=out) for a in args])
    assert result.exit_code == 2, result.output
    assert f"{TYPO} is not in the range" in result.output and "100000" in result.output
    assert "generating" not in result.output and "Traceback" not in result.output
    assert not out.exists()


@pytest.mark.parametrize("args", [
    ["pages", "train", "--n-train", TYPO],
    ["pages", "train", "--n-validation", TYPO],
    ["pages", "offline-test", "pages-xycut", "--n", TYPO],
])
def test_a_typo_sized_page_run_is_refused_before_any_work(fresh_cli: CliRunner,
                                                          args: list[str]) -> None:
    """Pages too: `abvoc pages offline-test --n 1000000000` generated in silence until killed."""
    result = fresh_cli.invoke(main, args)
    assert result.exit_code == 2, result.output
    assert f"{TYPO} is not in the range" in result.output and "2000" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("args", [
    ["train", "ocr-small-printed", "--epochs", TYPO],
    ["pages", "train", "--epochs", TYPO],
    ["workloads", "gameplay", "build", "--out", "{out}", "--epochs", TYPO],
])
def test_a_typo_sized_epoch_count_is_refused_before_any_work(fresh_cli: CliRunner,
                                                             tmp_path: Path,
                                                             args: list[str]) -> None:
    """`abvoc workloads gameplay build --epochs 99999999999999999999` trained without end."""
    out = tmp_path / "out"
    result = fresh_cli.invoke(main, [a.format(out=out) for a in args])
    assert result.exit_code == 2, result.output
    assert f"{TYPO} is not in the range" in result.output and "1000" in result.output
    assert "Traceback" not in result.output and not out.exists()
