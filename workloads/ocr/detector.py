"""Stage 1, the detector: symbol boxes from connected components of ink.

Algorithmic because it is the better candidate here: the symbols of this workload are drawn
apart, so connected components find them exactly, and the few symbols made of several strokes
that do not touch (=, ÷) are merged by geometry. Specks of scan noise are dropped.

An image of more than MAX_MARKS separate ink marks is refused (a 400 naming the count) before any
per-mark work: a formula has tens, and the merge rules compare marks pairwise (in Python here,
as N x N tensors in the one-graph candidate), so a page of dashes or noise would otherwise hold a
serving thread for minutes or exhaust memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.errors import AbvocError
from core.page_boxes import iou
from workloads.ocr.components import label_components

INK_THRESHOLD = 0.4
MIN_AREA = 4  # pixels; smaller lone components are noise
MAX_MARKS = 1024  # separate ink marks (8-connected components) in one image


class TooManyMarks(AbvocError):
    """The image holds more separate ink marks than one formula could."""

    status = 400


def check_marks(count: int) -> None:
    """Refuse an image of `count` marks when that is more than MAX_MARKS."""
    if count > MAX_MARKS:
        raise TooManyMarks(f"the image holds {count} separate ink marks; the OCR candidates read "
                           f"one formula, at most {MAX_MARKS} marks: crop the image to the "
                           "formula or send a cleaner scan")


@dataclass
class Detection:
    boxes: list[tuple[int, int, int, int]]  # x0, y0, x1, y1 (exclusive), left to right
    patches: list[np.ndarray]  # each symbol's own ink (other symbols masked out), float 0..1


def _median_uint8(image: np.ndarray) -> float:
    """np.median of a uint8 image from its 256-bin histogram: exact, and no sort per request."""
    counts = np.cumsum(np.bincount(image.ravel(), minlength=256))
    n = int(counts[-1])
    lo, hi = np.searchsorted(counts, [(n - 1) // 2 + 1, n // 2 + 1])
    return (float(lo) + float(hi)) / 2


def ink_of(image: np.ndarray, paper: float | None = None) -> np.ndarray:
    """Ink in [0, 1] relative to the paper's brightness: the image's median, or `paper` when
    given (a crop of a larger image, measured against that image's paper)."""
    img = image.astype(np.float32)
    if paper is None:
        paper = _median_uint8(image) if image.dtype == np.uint8 else float(np.median(img))
    paper = max(paper, 1.0)
    return np.clip((paper - img) / paper, 0.0, 1.0)


@dataclass
class _Comp:
    labels: list[int]
    x0: int
    y0: int
    x1: int
    y1: int
    area: int

    @property
    def w(self) -> int:
        return self.x1 - self.x0

    @property
    def h(self) -> int:
        return self.y1 - self.y0

    @property
    def flat(self) -> bool:
        return self.w >= 2.2 * self.h

    def absorb(self, other: _Comp) -> None:
        self.labels += other.labels
        self.x0, self.y0 = min(self.x0, other.x0), min(self.y0, other.y0)
        self.x1, self.y1 = max(self.x1, other.x1), max(self.y1, other.y1)
        self.area += other.area


def _gap_y(a: _Comp, b: _Comp) -> int:
    return max(a.y0, b.y0) - min(a.y1, b.y1)


def _overlap_x(a: _Comp, b: _Comp) -> int:
    return min(a.x1, b.x1) - max(a.x0, b.x0)


def _nothing_between(a: _Comp, b: _Comp, comps: list[_Comp]) -> bool:
    top, bottom = (a, b) if a.y0 < b.y0 else (b, a)
    x0, x1 = max(a.x0, b.x0), min(a.x1, b.x1)
    for c in comps:
        if c is a or c is b:
            continue
        if c.x1 > x0 and c.x0 < x1 and c.y1 > top.y1 and c.y0 < bottom.y0:
            return False
    return True


def _equals_pair(a: _Comp, b: _Comp, comps: list[_Comp]) -> bool:
    """Two flat strokes of about the same length, one just above the other: "="."""
    gap = _gap_y(a, b)
    if gap <= 0 or not (a.flat and b.flat):
        return False
    narrow, wide = sorted((a.w, b.w))
    return (_overlap_x(a, b) >= 0.6 * narrow and narrow >= 0.55 * wide
            and gap <= 0.6 * narrow and _nothing_between(a, b, comps))


def _is_dot_of(dot: _Comp, line: _Comp) -> bool:
    """A dot of "÷": a few stroke-widths across, centred on the line, close to it."""
    if dot.flat or not line.flat:
        return False
    size = max(dot.w, dot.h)
    cx = (dot.x0 + dot.x1) / 2
    return (size <= 3 * line.h + 1 and size <= 0.45 * line.w
            and abs(cx - (line.x0 + line.x1) / 2) <= 0.2 * line.w
            and 0 < _gap_y(dot, line) <= max(2.5 * size, 0.5 * line.w))


def _merge_divides(comps: list[_Comp]) -> list[_Comp]:
    """Join a line with one dot above and one below; a lone line with one dot stays apart."""
    gone: set[int] = set()
    for line in comps:
        if not line.flat or id(line) in gone:
            continue
        above = [c for c in comps if id(c) not in gone and c.y1 <= line.y0 and _is_dot_of(c, line)]
        below = [c for c in comps if id(c) not in gone and c.y0 >= line.y1 and _is_dot_of(c, line)]
        if len(above) == 1 and len(below) == 1:
            for dot in (above[0], below[0]):
                line.absorb(dot)
                gone.add(id(dot))
    return [c for c in comps if id(c) not in gone]


def _merge_equals(comps: list[_Comp]) -> list[_Comp]:
    gone: set[int] = set()
    for i, a in enumerate(comps):
        if id(a) in gone or not a.flat:
            continue
        for b in comps[i + 1:]:
            if id(b) not in gone and _equals_pair(a, b, comps):
                a.absorb(b)
                gone.add(id(b))
                break
    return [c for c in comps if id(c) not in gone]


def percentile(values: np.ndarray, q: float) -> float:
    """np.percentile(values, q) (its default, linear method) bit for bit, from a partition of
    the two ranks it reads: a third of the time numpy's general path takes on a formula image.

    As numpy does for a float q: rank (n - 1) * q / 100, the two neighbours in the array's own
    dtype, interpolated in that dtype from the nearer one."""
    flat = values.ravel()
    index = (flat.size - 1) * (q / 100)
    lo = int(index)
    hi = min(lo + 1, flat.size - 1)
    part = np.partition(flat, (lo, hi) if hi != lo else lo)
    a, b = part[lo], part[hi]
    t = index - lo
    diff = b - a
    return float(b - diff * (1 - t) if t >= 0.5 else a + diff * t)


def ink_mask(ink: np.ndarray) -> np.ndarray:
    """Ink pixels, relative to the darkest ink so faint scans and bold pens binarize alike."""
    return ink > max(0.25, INK_THRESHOLD * percentile(ink, 99.5))


def count_marks(image: np.ndarray) -> int:
    """How many separate ink marks `detect` starts from (before merges and specks)."""
    return len(label_components(ink_mask(ink_of(image)))[1])


def detect(image: np.ndarray, paper: float | None = None) -> Detection:
    ink = ink_of(image, paper)
    # 8-connected components with their boxes and areas in one native pass (scipy fallback).
    labels, stats = label_components(ink_mask(ink))
    n = len(stats)
    check_marks(n)
    if n == 0:
        return Detection([], [])
    comps = [_Comp([k + 1], x0, y0, x1, y1, area)
             for k, (x0, y0, x1, y1, area) in enumerate(stats.tolist())]
    if len(comps) > 1 and any(c.flat for c in comps):  # only flat strokes start a merge
        comps = _merge_equals(_merge_divides(comps))
    comps = [c for c in comps if c.area >= MIN_AREA]
    comps.sort(key=lambda c: (c.x0, c.y0))
    merged = [c for c in comps if len(c.labels) > 1]
    if merged:
        # Relabel the strokes of a merged symbol as its first label, once for the whole image,
        # so each symbol's mask below is one comparison (no np.isin per component).
        lut = np.arange(n + 1, dtype=labels.dtype)
        for c in merged:
            lut[c.labels] = c.labels[0]
        labels = lut[labels]
    boxes, patches = [], []
    zero = np.float32(0.0)
    for c in comps:
        window = labels[c.y0:c.y1, c.x0:c.x1]
        patches.append(np.where(window == c.labels[0], ink[c.y0:c.y1, c.x0:c.x1], zero))
        boxes.append((c.x0, c.y0, c.x1, c.y1))
    return Detection(boxes, patches)


def match(predicted: list, truth: list, threshold: float = 0.5) -> dict[int, int]:
    """Greedy one-to-one matching of predicted to true boxes by IoU: {truth index: pred index}."""
    pairs = sorted(((iou(p, t), ti, pi) for pi, p in enumerate(predicted)
                    for ti, t in enumerate(truth)), reverse=True)
    out: dict[int, int] = {}
    used: set[int] = set()
    for score, ti, pi in pairs:
        if score < threshold:
            break
        if ti not in out and pi not in used:
            out[ti] = pi
            used.add(pi)
    return out
