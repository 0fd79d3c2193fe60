"""A page read formula by formula: the extraction stage, then the OCR on each cut-out formula.

This is the workload's half of serving pages (issue 18, point 4): the caller passes the two
routed candidates as plain callables (`extract` answers a page with JSON boxes, `read` answers a
formula image with LaTeX), so the HTTP route, the router and the events stay in `app`/`serving`.
Each formula carries what its own prediction must record so a correction to it, or a report
that the page missed or split a formula, can be laid at the right stage's door:
`formula_stages` (the page prediction it came from, its box and the extraction candidate) and
`reported_boxes` (a missed or split formula as a correction of the page's JSON answer).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.page_boxes import BOX_RULE, box_problem
from serving.servable import Answer
from workloads.ocr.detector import MAX_MARKS, count_marks
from workloads.ocr.pages.clean import binarize, clean_image, crop

Box = tuple[int, int, int, int]
REPORTS = ("missed", "split")


@dataclass(frozen=True)
class FormulaReading:
    index: int
    box: Box
    score: float
    image: np.ndarray  # the cut-out formula the OCR read
    answer: Answer  # the OCR's


@dataclass(frozen=True)
class PageReading:
    page: Answer  # the extraction candidate's: output is the list of {box, score}
    formulas: list[FormulaReading]


def cut_formulas(image: np.ndarray, boxes: Sequence[dict[str, Any]],
                 min_score: float = 0.0) -> list[tuple[Box, float, np.ndarray]]:
    """Each extracted formula's (box, score, image cut out of the cleaned page), in order."""
    clean = clean_image(image, binarize(image))
    out = []
    for item in boxes:
        if item["score"] >= min_score:
            box = tuple(int(v) for v in item["box"])
            out.append((box, float(item["score"]), crop(clean, box)))
    return out


def formula_marks(cuts: Sequence[tuple[Box, float, np.ndarray]]) -> list[int]:
    """Each cut-out formula's separate ink marks, as the OCR counts them before reading: counted
    for the whole page before any formula is served, so one the OCR would refuse (a picture of
    more marks than a formula holds) is answered as such, not left half-recorded."""
    return [count_marks(cut) for _, _, cut in cuts]


def unreadable(marks: int) -> str | None:
    """Why the OCR refuses a box of `marks` marks as a formula (a picture, not one), or None."""
    if marks <= MAX_MARKS:
        return None
    return (f"not read: the box holds {marks} separate ink marks, more than the {MAX_MARKS} the "
            "OCR candidates read in one formula (a picture, not a formula)")


PAGE_MARKS = 4 * MAX_MARKS
"""The most separate ink marks a page's formulas may hold together (the OCR's work grows with
them: a formula of MAX_MARKS marks took about 1.5 s): 12 times the densest of 300 example pages
(332 marks in 29 formulas; a formula 7 on average, at most 39), so 100 formulas of 40 marks fit;
a page of twenty 1,024-mark pictures held the OCR candidate for half a minute."""


def page_marks_problem(marks: Sequence[int]) -> str | None:
    """Why a page whose formulas hold `marks` is too much to read in one request, or None. The
    boxes refused as pictures (`unreadable`) are not read, so they do not count."""
    total = sum(m for m in marks if unreadable(m) is None)
    if total <= PAGE_MARKS:
        return None
    return (f"the page's formulas hold {total} separate ink marks; at most {PAGE_MARKS} are read "
            "per request (a worksheet page holds a few hundred): send the page in parts, or a "
            "cleaner scan")


def read_page(image: np.ndarray, extract: Callable[[np.ndarray], Answer],
              read: Callable[[np.ndarray], Answer], min_score: float = 0.0) -> PageReading:
    """Extract the formulas' boxes, cut each out of the cleaned page and read it."""
    page = extract(image)
    formulas = [FormulaReading(i, box, score, cut, read(cut)) for i, (box, score, cut)
                in enumerate(cut_formulas(image, page.output, min_score))]
    return PageReading(page, formulas)


def formula_stages(reading: FormulaReading, page_prediction_id: str, extractor: str,
                   version: str) -> dict[str, Any]:
    """The stages a formula's prediction records: the OCR's own, plus where it came from."""
    return {**reading.answer.stages,
            "extraction": {"page_prediction_id": page_prediction_id, "box": list(reading.box),
                           "score": reading.score, "candidate": extractor, "version": version}}


def reported_boxes(predicted: Sequence[dict[str, Any]], kind: str,
                   boxes: Sequence[Sequence[int]]) -> list[dict[str, Any]]:
    """The page's boxes as the customer says they should be: a `missed` formula's box added,
    or the boxes of a `split` formula (two or more predicted boxes) joined into one. The result
    is a valid correction of the extraction candidate's JSON answer (BOXES_SCHEMA)."""
    if kind not in REPORTS:
        raise ValueError(f"unknown report {kind!r}; use one of {REPORTS}")
    current = [{"box": [int(v) for v in b["box"]], "score": float(b["score"])}
               for b in predicted]
    wanted = [[int(v) for v in box] for box in boxes]
    if any(box_problem(b) is not None for b in wanted):
        raise ValueError(BOX_RULE)
    if kind == "missed":
        if len(wanted) != 1:
            raise ValueError("a missed formula is reported with its one box")
        return [*current, {"box": wanted[0], "score": 1.0}]
    parts = [b for b in current if b["box"] in wanted]
    if len(wanted) < 2 or len(parts) != len(wanted):
        raise ValueError("a split formula is reported with two or more of the page's boxes")
    joined = [min(b["box"][0] for b in parts), min(b["box"][1] for b in parts),
              max(b["box"][2] for b in parts), max(b["box"][3] for b in parts)]
    return [b for b in current if b["box"] not in wanted] + [{"box": joined, "score": 1.0}]
