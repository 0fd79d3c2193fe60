"""Both extraction candidates as bundles: validated, served on torch and ONNX Runtime with the
same answers, JSON boxes that meet their schema, in the caller's pixels, and registered with
their requirements."""

from __future__ import annotations

from pathlib import Path

import jsonschema_rs
import numpy as np
import pytest
from PIL import Image

from core.errors import AbvocError
from core.page_boxes import BOXES_SCHEMA
from core.store import Database
from serving.backends import get_backend
from serving.bundles import register_bundle, validate_bundle
from serving.pipelines import ImageCandidate
from serving.registry import Registry, validate_requirements
from workloads.ocr.pages.generator import generate_pages
from workloads.ocr.pages.metrics import evaluate_boxes

NAMES = ("pages-xycut", "pages-fcn")


@pytest.fixture(scope="module")
def pages() -> list:
    return generate_pages(2, seed=5, split="offline-test")


def _served(folder: Path, backend: str) -> ImageCandidate:
    manifest, stages = validate_bundle(folder)
    return ImageCandidate(manifest, stages[0].pipeline, get_backend(backend))


@pytest.mark.parametrize("name", NAMES)
def test_same_boxes_on_torch_and_onnxruntime_and_valid_json(extractors: dict[str, Path],
                                                            pages: list, name: str) -> None:
    manifest, _ = validate_bundle(extractors[name])
    assert manifest.takes_images and manifest.output.type == "json"
    assert manifest.output.schema == BOXES_SCHEMA
    assert {"p99_ms", "target_recall"} <= set(manifest.requirements)
    validator = jsonschema_rs.validator_for(BOXES_SCHEMA)
    answers = {}
    for backend in ("torch", "onnxruntime"):
        candidate = _served(extractors[name], backend)
        try:
            answers[backend] = [candidate.predict(p.image) for p in pages]
        finally:
            candidate.close()
    for a, b in zip(answers["torch"], answers["onnxruntime"], strict=True):
        assert a.output_type == "json"
        validator.validate(a.output)
        assert [x["box"] for x in a.output] == [x["box"] for x in b.output]
        np.testing.assert_allclose([x["score"] for x in a.output],
                                   [x["score"] for x in b.output], atol=1e-3)


def test_xycut_finds_the_formulas_and_answers_in_the_callers_pixels(
        extractors: dict[str, Path], pages: list) -> None:
    candidate = _served(extractors["pages-xycut"], "torch")
    try:
        found = [[(x["box"], x["score"]) for x in candidate.predict(p.image).output]
                 for p in pages]
        result = evaluate_boxes([p.boxes for p in pages], found)
        assert result.recall >= 0.9 and result.precision >= 0.7
        page = pages[0]
        big = np.asarray(Image.fromarray(page.image).resize(
            (page.image.shape[1] * 2, page.image.shape[0] * 2), Image.BILINEAR))
        scaled = [(x["box"], x["score"]) for x in candidate.predict(big).output]
        truth = [tuple(2 * v for v in box) for box in page.boxes]
        assert evaluate_boxes([truth], [scaled]).recall >= 0.9
        assert max(x for b, _ in scaled for x in b) > page.image.shape[1]
    finally:
        candidate.close()


def test_registered_with_their_requirements(extractors: dict[str, Path], db: Database,
                                            tmp_path: Path) -> None:
    registry = Registry(db)
    for name in NAMES:
        info = register_bundle(registry, tmp_path / "models", extractors[name])
        assert info.requirements["target_recall"] == 0.95
        assert info.pipeline["output"]["type"] == "json"
        assert info.pipeline["takes"] == "image"
    with pytest.raises(AbvocError, match="'target_recall' is a share"):
        validate_requirements({"target_recall": 1.5})
