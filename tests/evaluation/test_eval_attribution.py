"""Stage attribution on the OCR workload's own formulas: the renderer agrees with the real
converter, and each kind of injected fault is blamed on the stage that made it."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from sqlalchemy import select

from core.store.db import Database
from core.store.models import Prediction
from evaluation.attribution import STAGES, attribute, canonical, render
from evaluation.stage_blame import _may_record_stages, stage_attribution
from tests.evaluation.helpers import apply, correction, prediction
from workloads.ocr.converter import to_latex
from workloads.ocr.dataset import OFFLINE_MIX, Sample, generate


@pytest.fixture(scope="module")
def samples() -> list[Sample]:
    return generate(300, OFFLINE_MIX, 3, "validation")


def _stages(s: Sample) -> dict[str, Any]:
    return {"detector": {"boxes": [list(b) for b in s.boxes]},
            "recognizer": {"classes": list(s.classes)},
            "aligner": {"relations": [[p, r, 1.0] for p, r in s.relations]},
            "converter": {"latex": s.latex}}


def test_canonical_form_braces_every_group() -> None:
    assert canonical("x^2+\\frac12") == canonical("x^{2}+\\frac{1}{2}")
    assert canonical("\\sqrt{a_n}") == ["\\sqrt", "{", "a", "_", "{", "n", "}", "}"]


def test_render_agrees_with_the_pipelines_converter(samples: list[Sample]) -> None:
    for s in samples:
        relations = [(p, r) for p, r in s.relations]
        assert render(s.classes, [[p, r] for p, r in relations]) == canonical(s.latex)
        assert canonical(to_latex(s.classes, relations, s.boxes)) == canonical(s.latex)


def test_each_fault_is_blamed_on_its_stage(samples: list[Sample]) -> None:
    for s in samples[:100]:
        stages = _stages(s)
        assert attribute(s.latex, stages, s.latex) == "correct"
        missing = copy.deepcopy(stages)
        missing["detector"]["boxes"].pop()
        missing["recognizer"]["classes"].pop()
        assert attribute("?", missing, s.latex) == "detector"
        wrong = copy.deepcopy(stages)
        wrong["recognizer"]["classes"][0] = "\\theta" if s.classes[0] != "\\theta" else "x"
        assert attribute("?", wrong, s.latex) == "recognizer"
        assert attribute("?", stages, s.latex) == "converter"
    # A superscript read as a subscript is the aligner's error.
    scripted = next(s for s in samples if any(r == "sup" for _, r in s.relations))
    bad = _stages(scripted)
    for rel in bad["aligner"]["relations"]:
        if rel[1] == "sup":
            rel[1] = "sub"
    assert attribute(scripted.latex.replace("^", "_"), bad, scripted.latex) == "aligner"


def test_report_shares_by_candidate_and_slice(db: Database, samples: list[Sample]) -> None:
    batch = []
    for i, s in enumerate(samples[:40]):
        stages = _stages(s)
        output = s.latex
        if i % 4 == 0:  # detector: one symbol lost
            stages["detector"]["boxes"].pop()
            stages["recognizer"]["classes"].pop()
            output = "?"
        elif i % 4 == 1:  # recognizer
            stages["recognizer"]["classes"][0] = "\\theta" if s.classes[0] != "\\theta" else "x"
            output = "?"
        pid = f"p{i}"
        batch.append(prediction(pid, output=output, stages=stages, slice_=s.category))
        if i % 2 == 0 or i % 4 == 1:
            batch.append(correction(pid, s.latex))
    apply(db, batch)
    with db.session() as sess:
        report = stage_attribution(sess, 1)
    overall = next(r for r in report["rows"] if r["slice"] == "all")
    assert report["stages"] == list(STAGES) == overall["stages"]
    assert overall["counts"] == {"extraction": 0, "detector": 10, "recognizer": 10, "aligner": 0,
                                 "converter": 0}
    assert overall["with_truth"] == 30  # 10 correct outputs got a (same) correction
    assert overall["shares"]["detector"] == 0.5
    assert sum(r["errors"] for r in report["rows"] if r["slice"] != "all") == 20


def test_classes_swapped_in_place_are_the_recognizers() -> None:
    # A real answer of a trained candidate: every class is right, two on the wrong symbols.
    row = {"detector": {"boxes": [[8, 5, 21, 24], [27, 17, 42, 20], [44, 6, 56, 26],
                                  [62, 10, 77, 24], [81, 6, 93, 26]]},
           "recognizer": {"classes": ["4", "-", "8", "\\times", "6"]},
           "aligner": {"relations": [[-1, "start", 1.0]] + [[i, "right", 1.0]
                                                             for i in range(4)]}}
    assert attribute("4-8\\times6", row, "4-6\\times8") == "recognizer"
    # With the structure wrong as well, nothing pairs the symbols: the aligner's, as before.
    scripted = {"detector": {"boxes": [[0, 0, 4, 4], [5, 0, 7, 2]]},
                "recognizer": {"classes": ["2", "x"]},
                "aligner": {"relations": [[-1, "start", 1.0], [0, "right", 1.0]]}}
    assert attribute("2x", scripted, "x^{2}") == "aligner"


def test_the_sql_filter_keeps_every_prediction_whose_stages_the_rules_read(db: Database) -> None:
    """The report reads only predictions whose stored stages mention a key the rules read
    (in SQL, before any is decoded): never one that records answers or OCR stages, and the
    empty stages most predictions carry are left out."""
    answers = {"answers": [{"stage": "classifier", "answer": "a"}, {"stage": "post",
                                                                    "answer": "a"}]}
    stages = {"none": {}, "bundle": answers, "ocr": {"recognizer": {"symbols": []}},
              "pages": {"extraction": {"boxes": []}}, "mention": {"note": "answers"}}
    apply(db, [prediction(name, stages=value) for name, value in stages.items()])
    with db.reading() as s:
        kept = set(s.scalars(select(Prediction.prediction_id)
                             .where(_may_record_stages(Prediction.stages))))
    assert kept == {"bundle", "ocr", "pages", "mention"}
