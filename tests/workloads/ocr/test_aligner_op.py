"""The aligner's tree building as ONNX Runtime ops (csrc/ort: AlignerFeatures, AlignerScan)
equals the Python aligner (group, all_pair_features, scan with table_decider) that the staged
pipeline runs: on the true symbols of every offline-test formula (nested fractions and roots
included) and on hypothesis' random symbol sets, several images a batch, with random and tied
network outputs; wrong inputs are refused with a message."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from workloads.ocr import ort_ops
from workloads.ocr.aligner import (
    MAX_DEPTH,
    N_FEATURES,
    RELATION_CODES,
    all_pair_features,
    group,
    scan,
    table_decider,
)
from workloads.ocr.components import ONNX_DOMAIN
from workloads.ocr.dataset import OFFLINE_MIX, generate
from workloads.ocr.formulas import CLASS_INDEX, SQRT, SYMBOL_CLASSES
from workloads.ocr.graph_aligner import aligner_attributes

REASON = ort_ops.unavailable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"ORT op library: {REASON}")
SYMBOLS = ["boxes", "classes", "image_index"]
Image = tuple[list[tuple[int, int, int, int]], list[str]]


def _model(op: str, inputs: list, outputs: list) -> ort.InferenceSession:
    node = helper.make_node(op, [i.name for i in inputs], [o.name for o in outputs],
                            domain=ONNX_DOMAIN, **aligner_attributes())
    options = ort_ops.session_options()
    options.log_severity_level = 4  # the refused runs below would log their error too
    return ort.InferenceSession(ort_ops.single_node_model(node, inputs, outputs),
                                sess_options=options, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def sessions() -> tuple[ort.InferenceSession, ort.InferenceSession]:
    ort_ops.build()  # incremental: no work when csrc/ort is unchanged
    info = helper.make_tensor_value_info
    symbols = [info("boxes", TensorProto.INT64, ["k", 4]),
               info("classes", TensorProto.INT64, ["k"]),
               info("image_index", TensorProto.INT64, ["k"])]
    features = _model("AlignerFeatures", symbols,
                      [info("features", TensorProto.FLOAT, ["p", N_FEATURES])])
    scanned = _model("AlignerScan", [*symbols, info("probs", TensorProto.FLOAT, ["p", 3])],
                     [info("parent", TensorProto.INT64, ["k"]),
                      info("relation", TensorProto.INT64, ["k"]),
                      info("relation_prob", TensorProto.FLOAT, ["k"])])
    return features, scanned


def _feed(images: Sequence[Image]) -> dict[str, np.ndarray]:
    boxes = [b for bx, _ in images for b in bx]
    return {"boxes": np.array(boxes, dtype=np.int64).reshape(-1, 4),
            "classes": np.array([CLASS_INDEX[c] for _, cl in images for c in cl], np.int64),
            "image_index": np.array([k for k, (bx, _) in enumerate(images) for _ in bx],
                                    np.int64)}


def _python(images: Sequence[Image], probs_of) -> tuple[np.ndarray, list, np.ndarray]:  # noqa: ANN001
    """What Pipeline._align_and_convert computes: features, then relations from `probs_of`."""
    rows: list[np.ndarray] = []
    regions, count = [], 0
    for boxes, classes in images:
        region = group(list(range(len(classes))), boxes, classes)
        count = all_pair_features(region, classes, rows, count)
        regions.append(region)
    feats = np.concatenate(rows) if rows else np.zeros((0, N_FEATURES), np.float32)
    probs = probs_of(count)
    decide = table_decider(probs)
    relations = []
    for (_, classes), region in zip(images, regions, strict=True):
        own: list = [(-1, "start", 1.0)] * len(classes)
        if classes:
            scan(region, decide, own)
        relations += own
    return feats, relations, probs


def _random_probs(seed: int):  # noqa: ANN202
    """Softmax-like rows, a third of them tied (0.4, 0.4, 0.2 in some order), so the ops must
    take the first of equal maxima as numpy's argmax does."""
    def make(rows: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        probs = rng.dirichlet(np.ones(3), size=rows).astype(np.float32)
        tied = rng.random(rows) < 1 / 3
        probs[tied] = np.float32([0.4, 0.4, 0.2])[rng.permuted(np.tile([0, 1, 2], (rows, 1)),
                                                               axis=1)][tied]
        return probs
    return make


def _assert_same(sessions: tuple, images: Sequence[Image], seed: int) -> None:
    features, scanned = sessions
    feed = _feed(images)
    want_feats, want_rel, probs = _python(images, _random_probs(seed))
    (got_feats,) = features.run(None, feed)
    np.testing.assert_array_equal(got_feats, want_feats)
    parent, relation, prob = scanned.run(None, {**feed, "probs": probs})
    got = [(int(p), RELATION_CODES[int(r)], float(q))
           for p, r, q in zip(parent, relation, prob, strict=True)]
    assert got == want_rel


def test_every_offline_formula_groups_and_scans_as_the_python_aligner(sessions: tuple) -> None:
    samples = generate(600, OFFLINE_MIX, 0, "offline-test")
    latex = " ".join(s.latex for s in samples)
    assert "\\frac" in latex and "\\sqrt" in latex and "^" in latex and "_" in latex
    nested = [s for s in samples if s.latex.count("\\frac") + s.latex.count("\\sqrt") >= 2]
    assert nested, "no formula nests a fraction or root in another"
    for start in range(0, len(samples), 8):  # several images per run, as the graph runs them
        batch = [(list(s.boxes), list(s.classes)) for s in samples[start: start + 8]]
        _assert_same(sessions, batch, start)


_box = st.tuples(st.integers(0, 160), st.integers(0, 80), st.integers(1, 70),
                 st.integers(1, 40)).map(lambda b: (b[0], b[1], b[0] + b[2], b[1] + b[3]))
# Bars and roots often, so random sets make fractions, roots and nestings of them.
_class = st.one_of(st.sampled_from(["-", SQRT]), st.sampled_from(SYMBOL_CLASSES))
_image = st.lists(st.tuples(_box, _class), max_size=14).map(
    lambda syms: ([b for b, _ in syms], [c for _, c in syms]))


@settings(max_examples=300, deadline=None)
@given(images=st.lists(_image, max_size=4), seed=st.integers(0, 2**31))
def test_random_symbol_sets_group_and_scan_as_the_python_aligner(
        sessions: tuple, images: list, seed: int) -> None:
    _assert_same(sessions, images, seed)


def _refused(session: ort.InferenceSession, feed: dict, message: str) -> None:
    with pytest.raises(Exception) as caught:  # noqa: PT011 - ORT's own exception classes
        session.run(None, feed)
    assert message in str(caught.value), str(caught.value)


def test_wrong_inputs_are_refused_with_a_message(sessions: tuple) -> None:
    features, scanned = sessions
    feed = _feed([([(0, 0, 4, 4), (6, 0, 10, 4)], ["x", "y"])])
    _refused(features, {**feed, "classes": np.array([0, len(SYMBOL_CLASSES)], np.int64)},
             f"class {len(SYMBOL_CLASSES)} is outside 0..{len(SYMBOL_CLASSES)}")
    _refused(features, {**feed, "image_index": np.array([1, 0], np.int64)},
             "the image index must not decrease")
    _refused(features, {**feed, "image_index": np.array([0], np.int64)},
             "boxes must be K x 4, classes and image index K")
    _refused(scanned, {**feed, "probs": np.zeros((2, 3), np.float32)},
             "probabilities must be 1 x 3")


def test_no_symbols_give_empty_outputs(sessions: tuple) -> None:
    features, scanned = sessions
    feed = _feed([])
    (feats,) = features.run(None, feed)
    assert feats.shape == (0, N_FEATURES)
    outs = scanned.run(None, {**feed, "probs": np.zeros((0, 3), np.float32)})
    assert [o.shape for o in outs] == [(0,), (0,), (0,)]


def _nested_roots(n: int) -> Image:
    return [(i, i, 4000 - i, 4000 - i) for i in range(n)], [SQRT] * n


def _nested_fractions(n: int) -> Image:
    """Each bar narrower and higher than the last, with a digit just below it: n fractions,
    each the numerator of the one before."""
    boxes, classes = [], []
    for k in range(n):
        y = 4000 - 10 * k
        boxes += [(k, y, 2000 - k, y + 2), (998, y + 4, 1002, y + 9)]
        classes += ["-", "1"]
    return boxes + [(998, 4000 - 10 * n, 1002, 4005 - 10 * n)], classes + ["x"]


def test_deep_nests_group_to_max_depth_alike(sessions: tuple) -> None:
    """Hundreds of concentric roots or stacked fractions (hostile input) group MAX_DEPTH levels
    deep, the deeper bars and roots read as plain symbols, in Python and in the ops alike."""
    for image in (_nested_roots(500), _nested_fractions(300)):
        region, depth = group(list(range(len(image[1]))), *image), 0
        while any(el.parts for el in region.elements):
            region = next(p for el in region.elements for p in el.parts.values())
            depth += 1
        assert depth == MAX_DEPTH
        _assert_same(sessions, [image], 0)
