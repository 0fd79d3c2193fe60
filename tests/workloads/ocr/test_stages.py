import numpy as np

from workloads.ocr import converter
from workloads.ocr.aligner import grouping_is_exact, relation_examples
from workloads.ocr.dataset import BALANCED_MIX, Mix, generate
from workloads.ocr.detector import detect, match
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
