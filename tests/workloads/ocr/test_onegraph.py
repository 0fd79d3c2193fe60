"""The one-graph candidate: detector (with the native op), crops, recognizer and aligner (with
its grouping and scan ops) exported as one ONNX model, run by ONNX Runtime with the op library,
reads the whole offline test as the staged torch pipeline does, and serves through /v1/predict
as a bundle (backend onnxruntime)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import onnx
import pytest

from core.settings import Settings
from core.store import Database
from serving.bundles import load_manifest
from serving.registry import Registry
from tests.workloads.ocr.ccl_cases import dashes
from tests.workloads.ocr.derived import DerivedCli, served_answers
from workloads.ocr.dataset import OFFLINE_MIX, generate
from workloads.ocr.detector import MAX_MARKS, TooManyMarks, count_marks, detect
from workloads.ocr.offline import DEFAULT_TEST_SIZE
from workloads.ocr.onegraph import GRAPH_FILE, make_candidate
from workloads.ocr.onnx_runner import OneGraphRunner, graph_runs
from workloads.ocr.pipeline import Pipeline
from workloads.ocr.recognizer import crops_batch

NAME = "ocr-onegraph"
# A crop pixel of the graph may differ from crops_batch's by one float32 step below 1.0: both
# sum the same float64 resize taps, but numpy's matmul and ONNX Runtime's add them in another
# order, so a float64 sum can round apart and, rarely, its float32 rounding with it.
CROP_TOLERANCE = float(np.spacing(np.float32(1.0)))
# Scores are the softmax of logits from two runtimes' convolutions (float rounding apart),
# shown rounded to 4 places: a score may move by one last place; classes may not move.
SCORE_TOLERANCE = 1e-4
# The confidence (a product of those probabilities, shown to 6 places) likewise by one place.
CONFIDENCE_TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def onegraph(tiny_candidate: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(make_candidate(NAME, tiny_candidate, tmp_path_factory.mktemp("onegraph"))
                ["artifacts"])


@pytest.fixture(scope="module")
def offline_test() -> list:
    return generate(DEFAULT_TEST_SIZE, OFFLINE_MIX, 0, "offline-test")


def test_the_bundle_is_one_graph_holding_the_custom_op(onegraph: Path) -> None:
    graph = onnx.load(str(onegraph / GRAPH_FILE)).graph
    custom = [n for n in graph.node if n.domain == "abvoc"]
    assert [n.op_type for n in custom] == ["ConnectedComponents", "AlignerFeatures",
                                           "AlignerScan"]
    ops = {n.op_type for n in graph.node}
    assert {"Conv", "MaxPool", "Gemm", "MatMul"} <= ops  # the crops and the networks, too
    assert any(n.name.startswith("aligner/") for n in graph.node)  # the aligner network
    assert [i.name for i in graph.input] == ["images", "sizes"]
    assert [o.name for o in graph.output] == ["boxes", "image_index", "crops", "logits",
                                              "classes", "symbol_probs", "parent", "relation",
                                              "relation_prob"]
    assert load_manifest(onegraph).backend == "onnxruntime"
    assert sorted(p.name for p in onegraph.glob("*.onnx")) == [GRAPH_FILE]  # nothing beside it
    spec = json.loads((onegraph / "candidate.json").read_text())
    assert spec["onegraph"] and spec["derived_from"]["name"] == "ocr-small-mixed"
    assert spec["onnx"] == {"onegraph": GRAPH_FILE}


def test_the_whole_offline_test_reads_as_the_staged_pipeline_does(
        onegraph: Path, tiny_candidate: Path, offline_test: list) -> None:
    staged, one = Pipeline.load(tiny_candidate), Pipeline.load(onegraph)
    assert isinstance(one.runner, OneGraphRunner)
    assert one.runner.sessions["onegraph"].get_session_options().get_session_config_entry(
        "session.intra_op.allow_spinning") == "0"  # as every serving session (it spun)
    images = [s.image for s in offline_test]
    diffs = {"boxes": 0, "classes": 0, "relations": 0, "latex": 0, "scores": 0,
             "confidence": 0, "crop_pixels": 0}
    worst_crop = worst_score = worst_confidence = 0.0
    for start in range(0, len(images), 32):
        batch = images[start: start + 32]
        for a, b in zip(staged.predict(batch), one.predict(batch), strict=True):
            sa, sb = a.stages, b.stages
            diffs["boxes"] += sa["detector"] != sb["detector"]
            diffs["classes"] += sa["recognizer"]["classes"] != sb["recognizer"]["classes"]
            diffs["relations"] += ([r[:2] for r in sa["aligner"]["relations"]]
                                   != [r[:2] for r in sb["aligner"]["relations"]])
            diffs["latex"] += a.latex != b.latex
            gap = max((abs(x - y) for x, y in zip(sa["recognizer"]["scores"],
                                                 sb["recognizer"]["scores"], strict=False)),
                      default=0.0)  # over the boxes both found (box differences count above)
            diffs["scores"] += gap > 0
            worst_score = max(worst_score, gap)
            diffs["confidence"] += a.confidence != b.confidence
            worst_confidence = max(worst_confidence, abs(a.confidence - b.confidence))
    session = one.runner.sessions["onegraph"]
    for image in images:
        found = detect(image)
        boxes, crops = session.run(["boxes", "crops"],
                                   {"images": image[None], "sizes": np.array([image.shape])})
        if found.patches and [tuple(b) for b in boxes.tolist()] == found.boxes:
            apart = np.abs(crops - crops_batch(found.patches))
            diffs["crop_pixels"] += int((apart > 0).sum())
            worst_crop = max(worst_crop, float(apart.max()))
    told = (f"{len(images)} offline-test images, images that differ per stage: {diffs}; "
            f"largest crop pixel gap {worst_crop:.3g}, score gap {worst_score:.3g}, "
            f"confidence gap {worst_confidence:.3g}")
    assert diffs["boxes"] == diffs["classes"] == diffs["relations"] == diffs["latex"] == 0, told
    assert worst_crop <= CROP_TOLERANCE and worst_score <= SCORE_TOLERANCE + 1e-12, told
    assert worst_confidence <= CONFIDENCE_TOLERANCE + 1e-12, told


def test_blank_and_odd_sized_images_read_as_the_staged_pipeline_does(
        onegraph: Path, tiny_candidate: Path, offline_test: list) -> None:
    staged, one = Pipeline.load(tiny_candidate), Pipeline.load(onegraph)
    def stacked(samples: list) -> np.ndarray:  # formulas one above the other, as a page
        width = max(s.image.shape[1] for s in samples)
        return np.concatenate([np.pad(s.image, ((0, 0), (0, width - s.image.shape[1])),
                                      constant_values=255) for s in samples], axis=0)

    page = stacked(offline_test[3:43])  # some 40 formulas, hundreds of components
    images = [np.full((7, 300), 255, np.uint8), np.zeros((5, 5), np.uint8),
              stacked(offline_test[1:3]), offline_test[0].image[:, 3:-2], page]
    for a, b in zip(staged.predict(images), one.predict(images), strict=True):
        assert (a.latex, a.stages["detector"]) == (b.latex, b.stages["detector"])
    assert len(one.predict([page])[0].stages["detector"]["boxes"]) > 200
    assert one.predict(images[:1])[0].latex == "" and one.predict([]) == []


def test_strokes_of_two_images_in_one_batch_never_merge(onegraph: Path,
                                                        tiny_candidate: Path) -> None:
    """A bar at the foot of one image and one at the head of the next lie as an "=" would on
    the batch's canvas (one blank row apart); each image must still read alone."""
    low, high = np.full((12, 40), 255, np.uint8), np.full((12, 40), 255, np.uint8)
    low[10:12, 10:30] = 0
    high[0:2, 10:30] = 0
    dot_above, bar, dot_below = (np.full((4, 40), 255, np.uint8) for _ in range(3))
    dot_above[1:4, 18:21] = 0  # stacked, a dot, a bar and a dot: a "÷"
    bar[1:3, 10:30] = 0
    dot_below[0:3, 18:21] = 0
    staged, one = Pipeline.load(tiny_candidate), Pipeline.load(onegraph)
    for batch in ([low, high], [dot_above, bar, dot_below]):
        got = [r.stages["detector"]["boxes"] for r in one.predict(batch)]
        assert got == [r.stages["detector"]["boxes"] for r in staged.predict(batch)]
        assert all(len(boxes) == 1 for boxes in got)


def test_train_makes_and_registers_it_and_offline_test_runs_it(derived_cli: DerivedCli) -> None:
    res = derived_cli("train", NAME)
    assert res.exit_code == 0, res.output
    assert "as one ONNX graph" in res.output
    info = Registry(Database(derived_cli.url)).get(NAME)
    assert info.backend == "onnxruntime"
    res = derived_cli("offline-test", NAME, "--n", "8", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["environment"]["runner"] == "OneGraphRunner"
    assert "images in" in res.stderr  # with --json its progress still shows, on stderr


def test_chains_of_strokes_merge_in_the_staged_greedy_order(onegraph: Path,
                                                            tiny_candidate: Path) -> None:
    """Rows of dashes 2 px apart: each could make an "=" with the one above and below, so only
    the staged order (first stroke first, a taken stroke starts nothing) tells which pair."""
    grid = np.full((64, 64), 255, np.uint8)
    for y in range(1, 60, 4):
        for x in range(1, 58, 8):
            grid[y: y + 2, x: x + 5] = 0
    dots = np.full((40, 40), 255, np.uint8)  # a bar with two dots above: no "÷" takes them
    dots[4:7, 18:21] = dots[9:12, 18:21] = 0
    dots[15:17, 10:30] = 0
    dots[20:23, 18:21] = 0
    staged, one = Pipeline.load(tiny_candidate), Pipeline.load(onegraph)
    for image in (grid, dots):
        assert (one.predict_one(image).stages["detector"]
                == staged.predict_one(image).stages["detector"])


def test_the_offline_test_holds_the_multi_stroke_symbols_the_graph_merges(
        offline_test: list) -> None:
    """The equality above covers the vectorised "÷" and "=" merges only if both occur."""
    latex = " ".join(s.latex for s in offline_test)
    assert "\\div" in latex and "=" in latex


def test_the_one_graph_bundle_serves_through_v1_predict(settings: Settings,
                                                         onegraph: Path) -> None:
    local = Pipeline.load(onegraph)
    for image, answer in served_answers(settings, onegraph, NAME):
        assert answer["candidate"] == NAME
        assert answer["output"] == local.predict_one(image).latex


def test_runs_hold_at_most_four_images_and_max_marks_marks() -> None:
    assert graph_runs([]) == []
    assert graph_runs([3] * 9) == [range(0, 4), range(4, 8), range(8, 9)]
    assert graph_runs([MAX_MARKS, 1, MAX_MARKS - 1, 1]) == [range(0, 1), range(1, 3), range(3, 4)]
    assert graph_runs([600, 600, 10]) == [range(0, 1), range(1, 3)]


def test_too_many_marks_are_refused_before_the_graph_and_big_images_run_apart(
        onegraph: Path, tiny_candidate: Path, offline_test: list) -> None:
    """The graph's merge rules are N x N tensors over a run's components: a page of dashes must
    be refused by its count, not run (4,900 marks would need gigabytes), and images near the
    cap run in runs of their own, reading as the staged pipeline does."""
    staged, one = Pipeline.load(tiny_candidate), Pipeline.load(onegraph)
    start = time.perf_counter()
    with pytest.raises(TooManyMarks, match="4900 separate ink marks"):
        one.predict([offline_test[0].image, dashes(70, 70)])
    assert time.perf_counter() - start < 2.0
    batch = [offline_test[1].image, dashes(24, 24), dashes(24, 24), offline_test[2].image]
    assert [count_marks(image) for image in batch[1:3]] == [576, 576]  # 2 runs, not 1
    for a, b in zip(staged.predict(batch), one.predict(batch), strict=True):
        assert (a.latex, a.stages["detector"]) == (b.latex, b.stages["detector"])
