"""The formula boxes a page extraction candidate answers (``POST /v1/pages`` cuts formulas out
of the page by them), and what makes one a box: ``[x0, y0, x1, y1]`` in the page's pixels, left,
top, right, bottom, with some area.

Here in core, not with the extraction workload, because a correction of a page's boxes (and an
annotator's label of them) is checked at the door by :func:`core.output_types.check_output`:
JSON Schema can hold a box to four integers, but not its right edge to be past its left, so a
box drawn backwards or of no area passed it and became the page's truth; so did a box past the
page's edges, which the check refuses where the page's size is known
(:func:`feedback.page_size.page_size`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

BOXES_SCHEMA: dict[str, Any] = {
    "type": "array",
    "maxItems": 500,
    "items": {
        "type": "object",
        "required": ["box", "score"],
        "additionalProperties": False,
        "properties": {
            "box": {"type": "array", "minItems": 4, "maxItems": 4,
                    "items": {"type": "integer", "minimum": 0}},
            "score": {"type": "number", "minimum": 0, "maximum": 1},
        },
    },
}
"""The JSON Schema of an extraction candidate's answer, which its manifest carries as
``output.schema``: a candidate with this schema answers page boxes."""

BOX_RULE = "each box is [x0, y0, x1, y1] with x0 < x1 and y0 < y1, all >= 0"
MATCH_IOU = 0.5
"""The IoU at which the pages workload matches an extraction box with a true formula's, one to
one (``workloads/ocr/pages/metrics.py``, pycocotools' at 0.50): two true boxes overlapping this
much are one formula to it, so one box would match either and the other be a miss of every
candidate (whose extraction merges boxes that share ink into one)."""


def box_problem(box: Any, page: tuple[int, int] | None = None) -> str | None:
    """Why `box` is no formula box (inverted, of no area, not four integers from 0, or past the
    edges of its page, `page` (width, height), where that is known), or None. A coordinate
    written ``5.0`` is the integer 5, as JSON Schema's ``integer`` (which BOXES_SCHEMA holds it
    to) reads it and the store writes it (:func:`core.events.canonical_json`)."""
    if not isinstance(box, list | tuple) or len(box) != 4 or not all(map(_whole, box)):
        return "is not four integers [x0, y0, x1, y1]"
    x0, y0, x1, y1 = box = [int(v) for v in box]
    if min(box) < 0:
        return "has a negative coordinate; pixels count from 0"
    if x1 <= x0 or y1 <= y0:
        side = f"x1 ({x1}) is not past x0 ({x0})" if x1 <= x0 else \
            f"y1 ({y1}) is not past y0 ({y0})"
        return (f"is inverted or of no area: {side}; give [left, top, right, bottom], the right "
                "and bottom edges past the left and top")
    if page is not None and (x1 > page[0] or y1 > page[1]):
        width, height = page
        side = f"x1 ({x1}) is past its width" if x1 > width else f"y1 ({y1}) is past its height"
        return (f"reaches past the page, {width} wide and {height} high: {side}; give a box "
                "inside the page, in its pixels")
    return None


def _whole(value: Any) -> bool:
    """Whether `value` is a whole number: an int, or a float of integral value (not a bool)."""
    return (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, float) and value.is_integer())


def boxes_problem(boxes: list[dict[str, Any]],
                  page: tuple[int, int] | None = None) -> str | None:
    """The first box of an answer BOXES_SCHEMA passed that is no box (on `page`, its width and
    height, where known) or is an earlier one again (a page's truth would count that formula
    twice, one of them a miss of every candidate), or two that overlap as one formula
    (MATCH_IOU), said with where it is (``at /2/box``) and what to fix, or None."""
    seen: dict[tuple[int, ...], int] = {}
    for i, item in enumerate(boxes):
        if (problem := box_problem(item["box"], page)) is not None:
            return f"at /{i}/box: box {item['box']} {problem}"
        if (first := seen.setdefault(tuple(item["box"]), i)) != i:
            return (f"at /{i}/box: box {item['box']} is the box at /{first}/box again; give "
                    "each formula's box once")
    if (pair := _overlapping([item["box"] for item in boxes])) is not None:
        first, later, overlap = pair
        return (f"at /{later}/box: box {boxes[later]['box']} overlaps the box at /{first}/box, "
                f"{boxes[first]['box']}, at IoU {overlap:.2f}; {MATCH_IOU:g} or more is one "
                "formula to the page's matching of extraction boxes; give each formula's box "
                "once, around its own ink")
    return None


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two boxes [x0, y0, x1, y1] (0 where either has no area)."""
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _overlapping(boxes: list[Sequence[float]]) -> tuple[int, int, float] | None:
    """The first two boxes (by the later one's place) at IoU MATCH_IOU or more, as (earlier,
    later, IoU), or None. Swept left to right, so each box meets only those whose right edge
    is past its left: a 500-box page is not 125,000 pairs."""
    found: list[tuple[int, int, float]] = []
    active: list[int] = []
    for i in sorted(range(len(boxes)), key=lambda k: boxes[k][0]):
        active = [j for j in active if boxes[j][2] > boxes[i][0]]
        found += [(min(i, j), max(i, j), v) for j in active
                  if (v := iou(boxes[i], boxes[j])) >= MATCH_IOU]
        active.append(i)
    return min(found, key=lambda f: (f[1], f[0]), default=None)
