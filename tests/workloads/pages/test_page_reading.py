"""A page read formula by formula through both served candidates, and missed/split reports as
corrections of the extraction answer that its schema accepts."""

from __future__ import annotations

from pathlib import Path

import jsonschema_rs
import pytest

from core.page_boxes import BOXES_SCHEMA
from serving.backends import get_backend
from serving.bundles import validate_bundle
from serving.pipelines import ImageCandidate
from workloads.ocr.pages.generator import generate_pages
from workloads.ocr.pages.metrics import evaluate_boxes
from workloads.ocr.pages.reading import formula_stages, read_page, reported_boxes


def _candidate(folder: Path) -> ImageCandidate:
    manifest, stages = validate_bundle(folder)
    return ImageCandidate(manifest, stages[0].pipeline, get_backend("torch"))


def test_a_page_comes_back_as_formulas_with_latex(extractors: dict[str, Path],
                                                  tiny_ocr: Path) -> None:
    page = generate_pages(1, seed=2, split="offline-test")[0]
    extract, ocr = _candidate(extractors["pages-xycut"]), _candidate(tiny_ocr)
    try:
        reading = read_page(page.image, extract.predict, ocr.predict)
    finally:
        extract.close()
        ocr.close()
    assert len(reading.formulas) == len(reading.page.output)
    found = [[(f.box, f.score) for f in reading.formulas]]
    assert evaluate_boxes([page.boxes], found).recall >= 0.9
    assert all(f.answer.output_type == "latex" and isinstance(f.answer.output, str)
               for f in reading.formulas)
    # The session's OCR is trained for seconds: it reads something, rarely all of it.
    assert sum(bool(f.answer.output) for f in reading.formulas) >= len(reading.formulas) // 2
    assert all(f.image.shape[0] >= 32 for f in reading.formulas)
    stages = formula_stages(reading.formulas[0], "page-1", "pages-xycut", "1")
    assert stages["extraction"]["page_prediction_id"] == "page-1"
    assert stages["extraction"]["box"] == list(reading.formulas[0].box)
    assert "detector" in stages  # the OCR's own stages stay


def test_missed_and_split_reports_are_valid_corrections() -> None:
    validator = jsonschema_rs.validator_for(BOXES_SCHEMA)
    predicted = [{"box": [10, 10, 40, 30], "score": 0.9}, {"box": [46, 10, 80, 30], "score": 0.8},
                 {"box": [10, 60, 90, 80], "score": 0.7}]
    missed = reported_boxes(predicted, "missed", [[10, 100, 70, 120]])
    assert missed[-1] == {"box": [10, 100, 70, 120], "score": 1.0} and len(missed) == 4
    split = reported_boxes(predicted, "split", [[10, 10, 40, 30], [46, 10, 80, 30]])
    assert split == [{"box": [10, 60, 90, 80], "score": 0.7},
                     {"box": [10, 10, 80, 30], "score": 1.0}]
    for corrected in (missed, split):
        validator.validate(corrected)
    with pytest.raises(ValueError, match="two or more of the page's boxes"):
        reported_boxes(predicted, "split", [[10, 10, 40, 30], [0, 0, 5, 5]])
    with pytest.raises(ValueError, match="x0 < x1"):
        reported_boxes(predicted, "missed", [[50, 10, 40, 30]])
    with pytest.raises(ValueError, match="unknown report"):
        reported_boxes(predicted, "merged", [])
