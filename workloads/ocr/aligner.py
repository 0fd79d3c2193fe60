"""Stage 3, the aligner: how the recognized symbols relate in space.

Two parts. Grouping is geometric: a square root owns what lies under its overline, and a line
with symbols both above and below it within its span is a fraction bar (widest first, so nested
structures resolve outside-in). What remains is a row of elements read left to right, and for
each element a small trained MLP decides, from the geometry of the pair and both classes,
whether it continues the baseline or is a superscript or subscript of the current base.

Each row's pair features are built for every ordered pair at once, so one network call serves
all images of a batch; the left-to-right scan then only looks decisions up.

Structures nest at most MAX_DEPTH levels: below that, bars and roots are read as plain symbols.
A formula nests a few; an image of hundreds of concentric roots would otherwise recurse past
Python's limit, and a failure there would count against the candidate's guardrails.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from torch import nn

from workloads.ocr.formulas import CLASS_INDEX, SCRIPT_RELATIONS, SQRT, SYMBOL_CLASSES

Box = Sequence[float]
FLAT = {"-", "=", "\\div", "+", "\\times"}
KINDS = len(SYMBOL_CLASSES) + 2  # symbol classes, then "fraction group", "root group"
GEOMETRY = 10
N_FEATURES = GEOMETRY + 2 * KINDS
MAX_DEPTH = 32  # fraction and root levels grouped; deeper bars and roots are plain symbols
# Every relation a symbol can have, in the order the op library's AlignerScan numbers them
# (csrc/ort/src/aligner.rs), for the one-graph candidate.
RELATION_CODES = ("start", *SCRIPT_RELATIONS, "num", "den", "body")


@dataclass
class Element:
    head: int  # symbol index: the symbol itself, a fraction's bar or a root's sign
    kind: str  # "sym", "frac" or "sqrt"
    box: tuple[float, float, float, float]
    parts: dict[str, Region] = field(default_factory=dict)  # num/den or body


@dataclass
class Region:
    elements: list[Element]
    scale: float  # typical symbol height of the row, in pixels
    pair_rows: dict[tuple[int, int], int] = field(default_factory=dict)


def _union(boxes: Sequence[Box]) -> tuple[float, float, float, float]:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes),
            max(b[2] for b in boxes), max(b[3] for b in boxes))


def _members(el: Element) -> list[int]:
    out = [el.head]
    for region in el.parts.values():
        for sub in region.elements:
            out += _members(sub)
    return out


def group(indices: Sequence[int], boxes: Sequence[Box], classes: Sequence[str],
          depth: int = 0) -> Region:
    """Split symbols into a row of elements, recursing into fractions and roots (`depth`:
    how many structures hold this row; at MAX_DEPTH none is formed)."""
    def width(i: int) -> float:
        return boxes[i][2] - boxes[i][0]

    def center(i: int) -> tuple[float, float]:
        b = boxes[i]
        return (b[0] + b[2]) / 2, (b[1] + b[3]) / 2

    holders = sorted((i for i in indices if classes[i] in ("-", SQRT)),
                     key=lambda i: -width(i)) if depth < MAX_DEPTH else []
    claimed: set[int] = set()
    structures: dict[int, tuple[str, dict[str, list[int]]]] = {}
    for h in holders:
        if h in claimed:
            continue
        hb = boxes[h]
        free = [j for j in indices if j != h and j not in claimed and j not in structures]
        if classes[h] == SQRT:
            body = [j for j in free if hb[0] + 0.15 * (hb[3] - hb[1]) < center(j)[0] < hb[2]
                    and hb[1] < center(j)[1] < hb[3]]
            structures[h] = ("sqrt", {"body": body})
            claimed.update(body)
            continue
        hcy = (hb[1] + hb[3]) / 2
        span = [j for j in free if hb[0] <= center(j)[0] <= hb[2]]
        above = [j for j in span if center(j)[1] < hcy]
        below = [j for j in span if center(j)[1] > hcy]
        if above and below:
            structures[h] = ("frac", {"num": above, "den": below})
            claimed.update(above + below)
    elements = []
    for i in indices:
        if i in claimed:
            continue
        if i in structures:
            kind, parts = structures[i]
            regions = {rel: group(idx, boxes, classes, depth + 1) for rel, idx in parts.items()}
            members = [i] + [j for idx in parts.values() for j in idx]
            elements.append(Element(i, kind, _union([boxes[j] for j in members]), regions))
        else:
            elements.append(Element(i, "sym", tuple(boxes[i])))
    elements.sort(key=lambda e: (e.box[0], e.box[1]))
    heights = [e.box[3] - e.box[1] for e in elements
               if e.kind == "sym" and classes[e.head] not in FLAT]
    if not heights:
        heights = [e.box[3] - e.box[1] for e in elements] or [1.0]
    return Region(elements, max(_median(heights), 1.0))


def _median(values: Sequence[float]) -> float:
    """np.median of a short list, exactly, without numpy's per-call overhead."""
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return float(ordered[mid])
    return float(ordered[mid - 1] + ordered[mid]) / 2


def _kind_index(el: Element, classes: Sequence[str]) -> int:
    if el.kind == "frac":
        return len(SYMBOL_CLASSES)
    if el.kind == "sqrt":
        return len(SYMBOL_CLASSES) + 1
    return CLASS_INDEX.get(classes[el.head], 0)


def pair_features(base: Element, cand: Element, scale: float,
                  classes: Sequence[str]) -> np.ndarray:
    """Geometry of a candidate element relative to the current base, in units of the row's
    symbol height, plus both elements' classes one-hot."""
    b, c = base.box, cand.box
    r = scale
    bh, ch = max(b[3] - b[1], 1.0), max(c[3] - c[1], 1.0)
    geo = [((c[1] + c[3]) - (b[1] + b[3])) / 2 / r, (c[3] - b[3]) / r, (c[1] - b[1]) / r,
           ch / r, bh / r, (c[0] - b[2]) / r, (c[2] - c[0]) / r, (b[2] - b[0]) / r,
           float(np.log(ch / bh)), (c[3] - (b[1] + b[3]) / 2) / r]
    out = np.zeros(N_FEATURES, dtype=np.float32)
    out[:GEOMETRY] = np.clip(geo, -6.0, 6.0)
    out[GEOMETRY + _kind_index(base, classes)] = 1.0
    out[GEOMETRY + KINDS + _kind_index(cand, classes)] = 1.0
    return out


def region_pair_features(region: Region, classes: Sequence[str]) -> np.ndarray:
    """`pair_features` for every ordered pair (i < j) of one region's elements at once, in
    np.triu_indices order: one set of array operations per region instead of one per pair,
    with the same float64 arithmetic, so every row equals `pair_features` exactly."""
    els = region.elements
    first, second = np.triu_indices(len(els), 1)
    out = np.zeros((len(first), N_FEATURES), dtype=np.float32)
    if not len(first):
        return out
    boxes = np.array([el.box for el in els], dtype=np.float64)
    kinds = np.array([_kind_index(el, classes) for el in els], dtype=np.intp)
    b, c = boxes[first].T, boxes[second].T
    r = region.scale
    bh, ch = np.maximum(b[3] - b[1], 1.0), np.maximum(c[3] - c[1], 1.0)
    geo = np.stack([((c[1] + c[3]) - (b[1] + b[3])) / 2 / r, (c[3] - b[3]) / r,
                    (c[1] - b[1]) / r, ch / r, bh / r, (c[0] - b[2]) / r, (c[2] - c[0]) / r,
                    (b[2] - b[0]) / r, np.log(ch / bh), (c[3] - (b[1] + b[3]) / 2) / r], axis=1)
    out[:, :GEOMETRY] = np.clip(geo, -6.0, 6.0)
    rows = np.arange(len(first))
    out[rows, GEOMETRY + kinds[first]] = 1.0
    out[rows, GEOMETRY + KINDS + kinds[second]] = 1.0
    return out


def all_pair_features(region: Region, classes: Sequence[str], rows: list[np.ndarray],
                      start: int = 0) -> int:
    """Append feature blocks for every ordered pair of this region and its sub-regions to
    `rows` and number each pair in `pair_rows`, counting from `start`; returns the next row.

    Rows come in the order of the former per-pair loop (a region's pairs of element i, then
    i's sub-regions, then i + 1), so the network sees the very same batch."""
    els = region.elements
    block = region_pair_features(region, classes)
    at = 0
    for i in range(len(els)):
        count = len(els) - i - 1
        if count:
            for j in range(i + 1, len(els)):
                region.pair_rows[(i, j)] = start + j - i - 1
            rows.append(block[at: at + count])
            at += count
            start += count
        for part in els[i].parts.values():
            start = all_pair_features(part, classes, rows, start)
    return start


# decide(region, base position, candidate position) -> (relation, probability)
Decide = Callable[[Region, int, int], tuple[str, float]]


def scan(region: Region, decide: Decide, relations: list, parent: int = -1,
         rel: str = "start") -> None:
    """Read a region left to right, writing (parent, relation, probability) per symbol."""
    _scan_row(region, list(range(len(region.elements))), decide, relations, parent, rel, 1.0)


def _scan_row(region: Region, positions: list[int], decide: Decide, relations: list,
              parent: int, rel: str, prob: float) -> None:
    if not positions:
        return
    els = region.elements
    base = positions[0]
    _place(region, base, decide, relations, parent, rel, prob)
    scripts: dict[str, list[tuple[int, float]]] = {"sup": [], "sub": []}
    for k in positions[1:]:
        r, p = decide(region, base, k)
        if r == "right":
            _flush(region, base, scripts, decide, relations)
            _place(region, k, decide, relations, els[base].head, "right", p)
            base, scripts = k, {"sup": [], "sub": []}
        else:
            scripts[r].append((k, p))
    _flush(region, base, scripts, decide, relations)


def _place(region: Region, pos: int, decide: Decide, relations: list, parent: int, rel: str,
           prob: float) -> None:
    el = region.elements[pos]
    relations[el.head] = (parent, rel, prob)
    for part_rel, part in el.parts.items():
        scan(part, decide, relations, el.head, part_rel)


def _flush(region: Region, base: int, scripts: dict, decide: Decide, relations: list) -> None:
    for rel in ("sub", "sup"):
        items = scripts[rel]
        if items:
            _scan_row(region, [k for k, _ in items], decide, relations,
                      region.elements[base].head, rel, items[0][1])


def table_decider(probs: np.ndarray) -> Decide:
    """Look decisions up in the network's output for all pairs (softmax rows)."""
    def decide(region: Region, base: int, k: int) -> tuple[str, float]:
        row = probs[region.pair_rows[(base, k)]]
        best = int(row.argmax())
        return SCRIPT_RELATIONS[best], float(row[best])
    return decide


def truth_decider(truth: Sequence[tuple[int, str]], classes: Sequence[str],
                  features: list[np.ndarray], labels: list[int]) -> Decide:
    """Teacher forcing: answer from the ground truth and record what the network must learn."""
    def decide(region: Region, base: int, k: int) -> tuple[str, float]:
        b, c = region.elements[base].head, region.elements[k].head
        start = c
        while truth[start][1] == "right":
            start = truth[start][0]
        parent, rel = truth[start]
        label = rel if parent == b and rel in ("sup", "sub") else "right"
        features.append(pair_features(region.elements[base], region.elements[k],
                                      region.scale, classes))
        labels.append(SCRIPT_RELATIONS.index(label))
        return label, 1.0
    return decide


class RelationMLP(nn.Module):
    """Pair features -> logits over (right, sup, sub)."""

    def __init__(self, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(N_FEATURES, hidden), nn.ReLU(),
                                 nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, len(SCRIPT_RELATIONS)))

    def forward(self, x):  # noqa: ANN001, ANN201 - torch convention
        return self.net(x)


def relation_examples(samples: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """Pair features and labels for the MLP, from true boxes, classes and relations."""
    features: list[np.ndarray] = []
    labels: list[int] = []
    for s in samples:
        region = group(list(range(len(s.classes))), s.boxes, s.classes)
        decide = truth_decider(s.relations, s.classes, features, labels)
        scan(region, decide, [None] * len(s.classes))
    if not features:
        return np.zeros((0, N_FEATURES), dtype=np.float32), np.zeros(0, dtype=np.int64)
    return np.stack(features), np.asarray(labels, dtype=np.int64)


def grouping_is_exact(sample) -> bool:  # noqa: ANN001 - a dataset Sample
    """Whether grouping the true symbols recovers the true fraction and root structure."""
    region = group(list(range(len(sample.classes))), sample.boxes, sample.classes)
    relations: list = [None] * len(sample.classes)
    truth = sample.relations
    scan(region, truth_decider(truth, sample.classes, [], []), relations)
    return all(r is not None and (r[0], r[1]) == tuple(t)
               for r, t in zip(relations, truth, strict=True))
