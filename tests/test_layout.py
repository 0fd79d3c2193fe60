"""The layout the design card sets: serving is generic, the reference workloads sit above it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_no_module_of_serving_names_a_workload() -> None:
    named = [f"{path.relative_to(ROOT)}:{i}"
             for path in sorted((ROOT / "serving").rglob("*.py"))
             for i, line in enumerate(path.read_text().splitlines(), 1)
             if re.search(r"\bocr\b|workloads|gameplay", line, re.IGNORECASE)]
    assert named == []


def test_the_ocr_workload_lives_in_workloads() -> None:
    assert not (ROOT / "serving" / "ocr").exists()
    assert (ROOT / "workloads" / "ocr" / "pipeline.py").is_file()
