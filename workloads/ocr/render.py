"""Lay a formula tree out on a baseline and rasterize it, keeping every symbol's true ink box.

Layout works in em units with y pointing up from the baseline; rasterizing turns ems into
pixels. Printed samples take their glyphs from one of matplotlib's fonts; handwritten-like
samples write every glyph with a fresh `Hand` (see glyphs.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter

from workloads.ocr.formulas import Frac, Node, Script, Sqrt, Sym
from workloads.ocr.glyphs import FONT_FAMILIES, Hand, printed_glyph

# cls -> (bottom, top, width) in em at scale 1; operators sit on the math axis (0.25 em).
NOMINAL: dict[str, tuple[float, float, float]] = {
    **{d: (0.0, 0.70, 0.50) for d in "0123456789"},
    "a": (0.0, 0.46, 0.50), "n": (0.0, 0.46, 0.50), "x": (0.0, 0.46, 0.50),
    "b": (0.0, 0.72, 0.48), "y": (-0.22, 0.46, 0.50),
    "\\alpha": (0.0, 0.46, 0.55), "\\pi": (0.0, 0.46, 0.55),
    "\\theta": (0.0, 0.72, 0.48), "\\beta": (-0.22, 0.74, 0.50),
    "+": (0.0, 0.50, 0.50), "-": (0.20, 0.30, 0.50), "\\times": (0.05, 0.45, 0.42),
    "\\div": (0.0, 0.50, 0.50), "=": (0.12, 0.38, 0.50),
    "(": (-0.20, 0.76, 0.28), ")": (-0.20, 0.76, 0.28),
}
SPACED = {"+", "-", "\\times", "\\div", "="}
AXIS = 0.25


@dataclass
class Item:
    """One symbol placed in em space: (x0, x1) horizontally, (lo, hi) vertically (y up)."""

    cls: str
    x0: float
    x1: float
    lo: float
    hi: float
    scale: float
    parent: int
    rel: str
    kind: str = "glyph"  # "glyph", "bar" or "radical"
    extra: dict = field(default_factory=dict)

    def shift(self, dx: float, dy: float) -> None:
        self.x0 += dx
        self.x1 += dx
        self.lo += dy
        self.hi += dy


class Layout:
    """Builds the items of a formula in reading order, with each symbol's parent edge."""

    def __init__(self, gap: float, frac_gap: float = 0.1) -> None:
        self.items: list[Item] = []
        self.gap = gap
        self.frac_gap = frac_gap

    def row(self, row: list[Node], s: float, parent: int, rel: str) -> tuple[float, float, float]:
        """Lay out a row at x=0 on baseline 0; returns (width, ascent, descent)."""
        x, asc, desc = 0.0, 0.0, 0.0
        prev_head = -1
        for i, node in enumerate(row):
            start = len(self.items)
            p, r = (parent, rel) if i == 0 else (prev_head, "right")
            width, a, d = self.node(node, s, p, r)
            for item in self.items[start:]:
                item.shift(x, 0.0)
            prev_head = start
            x += width
            asc, desc = max(asc, a), max(desc, d)
        return x, asc, desc

    def _sym(self, cls: str, s: float, parent: int, rel: str) -> tuple[float, float, float]:
        lo, hi, w = NOMINAL[cls]
        margin = (0.18 if cls in SPACED else self.gap / 2) * s
        self.items.append(Item(cls, margin, margin + w * s, lo * s, hi * s, s, parent, rel))
        return w * s + 2 * margin, hi * s, max(-lo * s, 0.0)

    def node(self, node: Node, s: float, parent: int, rel: str) -> tuple[float, float, float]:
        if isinstance(node, Sym):
            return self._sym(node.cls, s, parent, rel)
        if isinstance(node, Script):
            return self._script(node, s, parent, rel)
        if isinstance(node, Frac):
            return self._frac(node, s, parent, rel)
        return self._sqrt(node, s, parent, rel)

    def _script(self, node: Script, s: float, parent: int, rel: str) -> tuple[float, float, float]:
        base = len(self.items)
        width, asc, desc = self._sym(node.base.cls, s, parent, rel)
        base_item = self.items[base]
        start = len(self.items)
        ss = max(s * 0.62, 0.45)
        w, a, d = self.row(node.row, ss, base, node.rel)
        dy = (base_item.hi - 0.28 * s) if node.rel == "sup" else -0.2 * s
        dx = base_item.x1 + 0.03 * s
        for item in self.items[start:]:
            item.shift(dx, dy)
        margin = self.gap / 2 * s
        return max(width, dx + w + margin), max(asc, a + dy), max(desc, d - dy)

    def _frac(self, node: Frac, s: float, parent: int, rel: str) -> tuple[float, float, float]:
        bar_idx = len(self.items)
        t = 0.06 * s
        bar = Item("-", 0.0, 0.0, AXIS * s - t / 2, AXIS * s + t / 2, s, parent, rel, kind="bar")
        self.items.append(bar)
        fs = max(s * 0.8, 0.5)
        n0 = len(self.items)
        wn, an, dn = self.row(node.num, fs, bar_idx, "num")
        d0 = len(self.items)
        wd, ad, dd = self.row(node.den, fs, bar_idx, "den")
        width = max(wn, wd) + 0.16 * s
        pad = 0.08 * s
        num_base = bar.hi + self.frac_gap * s + dn
        den_base = bar.lo - self.frac_gap * s - ad
        for item in self.items[n0:d0]:
            item.shift(pad + (width - wn) / 2, num_base)
        for item in self.items[d0:]:
            item.shift(pad + (width - wd) / 2, den_base)
        bar.x0, bar.x1 = pad, pad + width
        return width + 2 * pad, num_base + an, max(-(den_base - dd), 0.0)

    def _sqrt(self, node: Sqrt, s: float, parent: int, rel: str) -> tuple[float, float, float]:
        idx = len(self.items)
        rad = Item("\\sqrt", 0.0, 0.0, 0.0, 0.0, s, parent, rel, kind="radical")
        self.items.append(rad)
        start = len(self.items)
        w, a, d = self.row(node.body, s, idx, "body")
        hook = 0.5 * s
        pad = self.gap / 2 * s
        for item in self.items[start:]:
            item.shift(pad + hook, 0.0)
        rad.x0, rad.x1 = pad, pad + hook + w + 0.06 * s
        rad.lo, rad.hi = -d - 0.08 * s, a + (self.frac_gap + 0.04) * s
        rad.extra["hook"] = hook
        return rad.x1 + pad, rad.hi + 0.04 * s, -rad.lo


@dataclass
class Rendered:
    image: np.ndarray  # uint8, white paper, dark ink
    classes: list[str]
    boxes: list[tuple[int, int, int, int]]  # x0, y0, x1, y1 (exclusive) of each symbol's ink
    relations: list[tuple[int, str]]  # (parent index or -1, relation)


def _radical_strokes(item: Item) -> list[list[tuple[float, float]]]:
    """The radical sign and its overline as one stroke, in the unit box of the whole sign."""
    hf = item.extra["hook"] / max(item.x1 - item.x0, 1e-6)
    return [[(0.0, 0.6), (0.25 * hf, 0.52), (0.55 * hf, 1.0), (hf, 0.0), (1.0, 0.0)]]


def render(row: list[Node], style: str, rng: np.random.Generator, noisy: bool = False) -> Rendered:
    """Rasterize a formula; `style` is "printed" or "handwritten"."""
    handwritten = style == "handwritten"
    em = float(rng.uniform(21.0, 27.0) if handwritten else rng.uniform(22.0, 25.0))
    layout = Layout(gap=0.16 if handwritten else 0.07, frac_gap=0.2 if handwritten else 0.14)
    width, asc, desc = layout.row(row, 1.0, -1, "start")
    pad = 6
    h = int(np.ceil((asc + desc) * em)) + 2 * pad
    w = int(np.ceil(width * em)) + 2 * pad
    top = max((32 - h) // 2, 0)
    h = max(h, 32)
    canvas = np.zeros((h, w), dtype=np.float32)
    family = str(rng.choice(sorted(FONT_FAMILIES)))
    hand = Hand(rng, em) if handwritten else None
    pen = Hand(rng, em, steady=True)
    classes, boxes, relations = [], [], []
    for item in layout.items:
        x0 = pad + item.x0 * em
        y0 = top + pad + (asc - item.hi) * em
        bw, bh = (item.x1 - item.x0) * em, (item.hi - item.lo) * em
        if hand is not None and item.kind == "glyph":
            x0 += rng.normal(0.0, 0.03) * em
            y0 += rng.normal(0.0, 0.03) * em
        if item.kind == "glyph" and hand is None:
            ink = printed_glyph(family, item.cls, bw, bh)
            ox, oy = (bw - ink.shape[1]) / 2, (bh - ink.shape[0]) / 2
        else:
            writer = hand or pen
            if item.kind == "glyph":
                ink, ox, oy = writer.glyph(item.cls, bw, bh)
            elif item.kind == "bar":
                ink, ox, oy = writer.draw([[(0.0, 0.5), (1.0, 0.5)]], bw, 0.0)
                oy += bh / 2
            else:
                ink, ox, oy = writer.draw(_radical_strokes(item), bw, bh)
        box = _paste(canvas, ink, int(round(x0 + ox)), int(round(y0 + oy)))
        classes.append(item.cls)
        boxes.append(box)
        relations.append((item.parent, item.rel))
    if noisy:
        canvas = _degrade(canvas, rng)
    image = np.clip(255.0 * (1.0 - canvas), 0, 255).astype(np.uint8)
    return Rendered(image, classes, boxes, relations)


def _paste(canvas: np.ndarray, ink: np.ndarray, x: int, y: int) -> tuple[int, int, int, int]:
    h, w = canvas.shape
    ih, iw = ink.shape
    cx0, cy0 = max(x, 0), max(y, 0)
    cx1, cy1 = min(x + iw, w), min(y + ih, h)
    part = ink[cy0 - y: cy1 - y, cx0 - x: cx1 - x]
    np.maximum(canvas[cy0:cy1, cx0:cx1], part, out=canvas[cy0:cy1, cx0:cx1])
    ys, xs = np.nonzero(part > 0.4)
    if len(ys) == 0:
        ys, xs = np.nonzero(part > 0.0)
    if len(ys) == 0:
        return (cx0, cy0, cx0 + 1, cy0 + 1)
    return (cx0 + int(xs.min()), cy0 + int(ys.min()), cx0 + int(xs.max()) + 1,
            cy0 + int(ys.max()) + 1)


def _degrade(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Scan artefacts: blur, uneven paper, sensor noise and a few specks."""
    out = gaussian_filter(ink, float(rng.uniform(0.3, 0.6)))
    h, w = out.shape
    ramp = np.linspace(0.0, float(rng.uniform(0.0, 0.15)), w, dtype=np.float32)[None, :]
    out = out * float(rng.uniform(0.85, 1.0)) + ramp
    out = out + rng.normal(0.0, float(rng.uniform(0.02, 0.07)), out.shape)
    for _ in range(int(rng.integers(0, 5))):
        out[int(rng.integers(0, h)), int(rng.integers(0, w))] = float(rng.uniform(0.5, 0.9))
    return np.clip(out, 0.0, 1.0).astype(np.float32)
