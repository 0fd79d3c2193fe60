import time

import numpy as np
import pytest

from tests.workloads.ocr.ccl_cases import dashes
from workloads.ocr import converter
from workloads.ocr.aligner import grouping_is_exact, relation_examples
from workloads.ocr.dataset import BALANCED_MIX, Mix, generate
from workloads.ocr.detector import MAX_MARKS, TooManyMarks, count_marks, detect, match
from workloads.ocr.formulas import SYMBOL_CLASSES, Frac, Sym, to_latex
from workloads.ocr.recognizer import SIZE, SymbolCNN, crop_set, crops_batch
from workloads.ocr.render import render

CLEAN_PRINTED = Mix.of({"printed/elementary": 1.0, "printed/middle": 1.0})


def test_detector_finds_printed_symbols() -> None:
    samples = generate(40, CLEAN_PRINTED, seed=1)
    found = total = 0
    for s in samples:
        det = detect(s.image)
        found += len(match(det.boxes, s.boxes))
        total += len(s.boxes)
        assert len(det.boxes) == len(det.patches)
    assert found / total > 0.97


def test_detector_merges_multi_stroke_symbols_but_not_fractions() -> None:
    tree = [Sym("8"), Sym("\\div"), Sym("4"), Sym("="), Frac([Sym("1")], [Sym("2")])]
    r = render(tree, "printed", np.random.default_rng(0))
    det = detect(r.image)
    assert len(det.boxes) == len(r.boxes) == 7
    assert set(match(det.boxes, r.boxes)) == set(range(7))


def test_detector_on_blank_image() -> None:
    assert detect(np.full((32, 40), 255, dtype=np.uint8)).boxes == []


def test_recognizer_input_and_output_shapes() -> None:
    samples = generate(6, BALANCED_MIX, seed=2)
    crops = crop_set(samples)
    assert crops.x.shape[1:] == (1, SIZE, SIZE) and crops.x.dtype == np.float32
    assert len(crops.x) == len(crops.y) > 0
    assert crops_batch([]).shape == (0, 1, SIZE, SIZE)
    out = SymbolCNN((8, 16), 32)(__import__("torch").from_numpy(crops.x))
    assert tuple(out.shape) == (len(crops.x), len(SYMBOL_CLASSES))


def test_aligner_grouping_recovers_true_structure() -> None:
    samples = generate(120, BALANCED_MIX, seed=4)
    assert all(grouping_is_exact(s) for s in samples)
    x, y = relation_examples(samples)
    assert len(x) == len(y) and set(np.unique(y)) == {0, 1, 2}


def test_converter_from_true_relations_and_from_disorder() -> None:
    tree = [Frac([Sym("1")], [Sym("x")]), Sym("+"), Sym("2")]
    r = render(tree, "handwritten", np.random.default_rng(3))
    assert converter.to_latex(r.classes, r.relations) == to_latex(tree) == r"\frac{1}{x}+2"
    # two unconnected symbols are read left to right by their boxes
    assert converter.to_latex(["2", "1"], [(-1, "start"), (-1, "start")],
                              [(10, 0, 12, 5), (0, 0, 3, 5)]) == "12"


def test_an_image_of_too_many_marks_is_refused_before_the_pairwise_merges() -> None:
    """Thousands of dashes would take the Python merge rules minutes; the count refuses it."""
    page = dashes(70, 70)  # 4,900 dashes in one 282 x 562 image
    assert count_marks(page) == 4900 > MAX_MARKS
    start = time.perf_counter()
    with pytest.raises(TooManyMarks) as refused:
        detect(page)
    assert time.perf_counter() - start < 1.0
    assert refused.value.status == 400
    assert "4900 separate ink marks" in refused.value.message
    at_the_cap = dashes(32, 32)  # exactly MAX_MARKS marks: read as before
    assert count_marks(at_the_cap) == MAX_MARKS
    assert len(detect(at_the_cap).boxes) > 0
