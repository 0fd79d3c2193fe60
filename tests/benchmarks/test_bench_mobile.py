"""bench_mobile prints what it measured: the networks' size in MiB (bytes / 2**20, as it computes
them) and the number of images it timed, which is at most the offline formulas it was given.
Before, the header said MB and `--images 4` with the default `--latency-images 100` printed
"latency: 100 images" for 4 timed images."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import bench_mobile


def test_header_names_its_unit_and_the_images_it_timed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench_mobile.main(["--images", "4", "--repeats", "1", "--n-train", "40", "--epochs", "1",
                       "--models", str(tmp_path / "models")])
    out = capsys.readouterr().out
    assert "offline test: 4 formulas; latency: 4 images x 1," in out
    header = next(line for line in out.splitlines() if line.startswith("model"))
    assert header.split()[1:3] == ["size", "MiB"]
