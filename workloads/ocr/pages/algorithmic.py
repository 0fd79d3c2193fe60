"""The algorithmic extractor: recursive XY-cut over projection profiles of the cleaned ink.

The page's ink (specks dropped, ruled lines removed) is cut where its row profile has a blank
band at least `row_gap` high, then each part where its column profile has a blank band at least
`word_gap` wide, alternating until nothing cuts. Formulas keep together because a fraction's
parts and a formula's symbols sit closer than two formulas do. A leaf that sits just left of
another on the same line and is short for its height is a problem number ("12)") and is dropped.
The two gaps are tuned on the validation pages (`tune`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from itertools import product

import numpy as np
from scipy import ndimage

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class CutParams:
    row_gap: int = 12
    word_gap: int = 18
    min_pixels: int = 10
    label_gap: int = 60  # a problem number sits at most this far left of its formula
    label_aspect: float = 2.6  # and is at most this many times as wide as high

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _runs(profile: np.ndarray, min_gap: int) -> list[tuple[int, int]]:
    """Spans of the profile's ink separated by blank bands of at least `min_gap`."""
    ink = np.flatnonzero(profile)
    if not len(ink):
        return []
    breaks = np.flatnonzero(np.diff(ink) > min_gap)
    starts = np.concatenate(([ink[0]], ink[breaks + 1]))
    stops = np.concatenate((ink[breaks], [ink[-1]])) + 1
    return list(zip(starts.tolist(), stops.tolist(), strict=True))


def xy_cut(mask: np.ndarray, params: CutParams) -> list[Box]:
    """Leaves of the recursive XY-cut of a binary mask, as tight boxes."""
    leaves: list[Box] = []
    stack: list[tuple[int, int, int, int, bool]] = [(0, 0, mask.shape[1], mask.shape[0], True)]
    while stack:
        x0, y0, x1, y1, rows_first = stack.pop()
        part = mask[y0:y1, x0:x1]
        rows = _runs(part.any(axis=1), params.row_gap)
        cols = _runs(part.any(axis=0), params.word_gap)
        if not rows or not cols:
            continue
        if len(rows) == 1 and len(cols) == 1:
            leaves.append((x0 + cols[0][0], y0 + rows[0][0], x0 + cols[0][1], y0 + rows[0][1]))
            continue
        if (rows_first and len(rows) > 1) or len(cols) == 1:
            stack += [(x0, y0 + a, x1, y0 + b, False) for a, b in rows]
        else:
            stack += [(x0 + a, y0, x0 + b, y1, True) for a, b in cols]
    return sorted(leaves, key=lambda b: (b[1], b[0]))


def _is_label(box: Box, others: Sequence[Box], params: CutParams) -> bool:
    """Short for its height, a line-mate close on its right and none close on its left."""
    x0, y0, x1, y1 = box
    h = y1 - y0
    if (x1 - x0) > params.label_aspect * h:
        return False
    right = left = False
    for other in others:
        ox0, oy0, ox1, oy1 = other
        if other == box or min(y1, oy1) - max(y0, oy0) <= 0.5 * min(h, oy1 - oy0):
            continue
        right |= 0 <= ox0 - x1 <= params.label_gap
        left |= 0 <= x0 - ox1 <= params.label_gap
    return right and not left


def keep_ink(binary: np.ndarray, min_pixels: int) -> np.ndarray:
    """The binary page without its specks (components under `min_pixels`)."""
    labels, n = ndimage.label(binary, structure=np.ones((3, 3), bool))
    if n == 0:
        return binary
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    keep = sizes >= min_pixels
    keep[0] = False
    return keep[labels]


def extract(binary: np.ndarray, params: CutParams) -> list[tuple[Box, float]]:
    """Formula boxes with scores on a cleaned binary sheet."""
    leaves = xy_cut(keep_ink(binary, params.min_pixels), params)
    out = []
    for box in leaves:
        if _is_label(box, leaves, params):
            continue
        h = box[3] - box[1]
        out.append((box, round(min(1.0, 0.5 + 0.5 * min(h, 30) / 30), 4)))
    return out


def tune(binaries: Sequence[np.ndarray], truths: Sequence[Sequence[Box]],
         base: CutParams = CutParams()) -> CutParams:
    """The row, word and label gaps that give the most true positives at IoU 0.5, fewest false."""
    from workloads.ocr.pages.metrics import iou_matrix

    best, best_score = base, -np.inf
    for row_gap, word_gap, label_gap in product((8, 12, 16), (12, 16, 20, 26), (45, 60, 75)):
        params = CutParams(row_gap, word_gap, base.min_pixels, label_gap, base.label_aspect)
        tp = fp = 0
        for binary, truth in zip(binaries, truths, strict=True):
            boxes = [b for b, _ in extract(binary, params)]
            hits = (iou_matrix(boxes, truth) >= 0.5).any(axis=1) if boxes and truth else []
            tp += int(np.sum(hits))
            fp += len(boxes) - int(np.sum(hits))
        if tp - fp > best_score:
            best, best_score = params, tp - fp
    return best
