"""Worksheet pages with several formulas, and the truth of every formula's box and LaTeX.

A page is one worksheet: one style (printed or handwritten) and one school level, one or two
columns, problem numbers ("3)") before the formulas or not, ruled notebook lines or plain paper,
scan noise or not. Formulas come from the single-formula generator and renderer
(`workloads.ocr.formulas`, `workloads.ocr.render`), rendered clean and pasted onto the page; the
page's noise is added last, to the whole sheet, as a scanner adds it. A formula's true box is the
union of its symbols' ink boxes, so the problem number and the ruled lines are outside it.

Every page is drawn from its own generator seeded by (seed, split, index), so a split is the same
on every machine; which slice a page falls in is a seeded quota of the mix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter

from workloads.ocr.dataset import BALANCED_MIX, CATEGORIES, Mix
from workloads.ocr.formulas import Sym, random_formula, to_latex
from workloads.ocr.render import render

PAGE_W, PAGE_H = 720, 1000
MARGIN_X, MARGIN_TOP, MARGIN_BOTTOM, GUTTER = 36, 48, 40, 48
PAGE_SPLITS = {"train": 11, "validation": 12, "offline-test": 13}
Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive), page pixels


@dataclass(frozen=True)
class PageMix:
    """Category weights and scan noise (a formula `Mix`) plus the page layout's shares."""

    formulas: Mix = BALANCED_MIX
    two_column_rate: float = 0.5
    ruled_rate: float = 0.5
    numbered_rate: float = 0.7

    def as_dict(self) -> dict[str, Any]:
        return {**self.formulas.as_dict(), "two_column_rate": self.two_column_rate,
                "ruled_rate": self.ruled_rate, "numbered_rate": self.numbered_rate}


TRAIN_PAGE_MIX = PageMix(Mix.of({c: 1.0 for c in CATEGORIES}, noise_rate=0.4))
OFFLINE_PAGE_MIX = PageMix(Mix.of({c: 1.0 for c in CATEGORIES}, noise_rate=0.5))


@dataclass(frozen=True)
class Formula:
    box: Box
    latex: str


@dataclass
class Page:
    image: np.ndarray  # uint8 grayscale, white paper
    formulas: list[Formula]
    category: str
    columns: int
    ruled: bool
    numbered: bool
    noisy: bool
    split: str = ""
    index: int = 0
    labels: list[Box] = field(default_factory=list)  # problem numbers' boxes (not formulas)

    @property
    def style(self) -> str:
        return self.category.split("/")[0]

    @property
    def level(self) -> str:
        return self.category.split("/")[1]

    @property
    def boxes(self) -> list[Box]:
        return [f.box for f in self.formulas]

    def slices(self) -> list[str]:
        """The offline test's slices this page counts in."""
        return [self.category, f"columns/{self.columns}",
                f"noise/{'noisy' if self.noisy else 'clean'}",
                f"lines/{'ruled' if self.ruled else 'plain'}"]

    def truth(self) -> list[dict[str, Any]]:
        return [{"box": list(f.box), "latex": f.latex} for f in self.formulas]


def _ink(image: np.ndarray) -> np.ndarray:
    return 1.0 - image.astype(np.float32) / 255.0


def _paste(canvas: np.ndarray, ink: np.ndarray, x: int, y: int) -> None:
    h, w = ink.shape
    np.maximum(canvas[y:y + h, x:x + w], ink, out=canvas[y:y + h, x:x + w])


def _union(boxes: list[tuple[int, int, int, int]], dx: int, dy: int) -> Box:
    arr = np.asarray(boxes)
    return (int(arr[:, 0].min()) + dx, int(arr[:, 1].min()) + dy,
            int(arr[:, 2].max()) + dx, int(arr[:, 3].max()) + dy)


def _rules(canvas: np.ndarray, rng: np.random.Generator) -> None:
    """Notebook lines across the sheet: light to mid grey, one or two pixels thick."""
    pitch = int(rng.integers(34, 56))
    darkness = float(rng.uniform(0.35, 0.85))
    thick = int(rng.integers(1, 3))
    for y in range(int(rng.integers(20, 20 + pitch)), PAGE_H - 10, pitch):
        canvas[y:y + thick, 12:PAGE_W - 12] = np.maximum(canvas[y:y + thick, 12:PAGE_W - 12],
                                                         darkness)


def _noise(canvas: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A scanner's marks on the whole sheet: blur, uneven light, sensor noise, dust specks."""
    out = gaussian_filter(canvas, float(rng.uniform(0.3, 0.7)))
    ramp = np.linspace(0.0, float(rng.uniform(0.0, 0.15)), PAGE_W, dtype=np.float32)[None, :]
    out = out * float(rng.uniform(0.85, 1.0)) + ramp
    out = out + rng.normal(0.0, float(rng.uniform(0.02, 0.06)), out.shape).astype(np.float32)
    for _ in range(int(rng.integers(5, 40))):
        y, x = int(rng.integers(0, PAGE_H - 3)), int(rng.integers(0, PAGE_W - 3))
        size = int(rng.integers(1, 4))
        out[y:y + size, x:x + size] = float(rng.uniform(0.5, 0.95))
    return out


def _column(canvas: np.ndarray, rng: np.random.Generator, x0: int, x1: int, style: str,
            level: str, numbered: bool, first_number: int) -> tuple[list[Formula], list[Box]]:
    formulas: list[Formula] = []
    labels: list[Box] = []
    y = MARGIN_TOP + int(rng.integers(0, 24))
    number = first_number
    while True:
        label = None
        if numbered:
            digits = [Sym(d) for d in str(number)] + [Sym(")")]
            label = render(digits, style, rng)
        for _ in range(4):  # a formula too wide for the column is drawn again
            tree = random_formula(rng, level)
            shot = render(tree, style, rng)
            lead = 0 if label is None else label.image.shape[1] + int(rng.integers(10, 40))
            if x0 + lead + shot.image.shape[1] <= x1:
                break
        else:
            return formulas, labels
        h = max(shot.image.shape[0], 0 if label is None else label.image.shape[0])
        if y + h > PAGE_H - MARGIN_BOTTOM:
            return formulas, labels
        indent = int(rng.integers(0, 16))
        if label is not None:
            ly = y + (h - label.image.shape[0]) // 2
            _paste(canvas, _ink(label.image), x0 + indent, ly)
            labels.append(_union(label.boxes, x0 + indent, ly))
        fx, fy = x0 + indent + lead, y + (h - shot.image.shape[0]) // 2
        _paste(canvas, _ink(shot.image), fx, fy)
        formulas.append(Formula(_union(shot.boxes, fx, fy), to_latex(tree)))
        y += h + int(rng.integers(14, 46))
        number += 1


def make_page(seed: int, split: str, index: int, category: str, columns: int,
              ruled: bool, numbered: bool, noisy: bool) -> Page:
    rng = np.random.default_rng([seed, PAGE_SPLITS[split], index])
    style, level = category.split("/")
    canvas = np.zeros((PAGE_H, PAGE_W), dtype=np.float32)
    if ruled:
        _rules(canvas, rng)
    width = (PAGE_W - 2 * MARGIN_X - GUTTER * (columns - 1)) // columns
    formulas: list[Formula] = []
    labels: list[Box] = []
    for c in range(columns):
        x0 = MARGIN_X + c * (width + GUTTER)
        got, marks = _column(canvas, rng, x0, x0 + width, style, level, numbered,
                             len(formulas) + 1)
        formulas += got
        labels += marks
    if noisy:
        canvas = _noise(canvas, rng)
    image = np.clip(255.0 * (1.0 - canvas), 0, 255).astype(np.uint8)
    return Page(image, formulas, category, columns, ruled, numbered, noisy, split, index, labels)


def _layouts(n: int, mix: PageMix, seed: int, split: str) -> list[tuple[str, int]]:
    """Exactly the mix's shares of category × columns (largest remainder), seeded order."""
    cells = [(c, cols) for c in CATEGORIES for cols in (1, 2)]
    weights = dict(mix.formulas.weights)
    probs = np.array([weights[c] * (mix.two_column_rate if cols == 2 else
                                    1.0 - mix.two_column_rate) for c, cols in cells])
    raw = probs / probs.sum() * n
    counts = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - counts), kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    order = np.random.default_rng([seed, PAGE_SPLITS[split], 10**9]).permutation(n)
    flat = [cell for cell, k in zip(cells, counts, strict=True) for _ in range(k)]
    return [flat[i] for i in order]


def generate_pages(n: int, mix: PageMix = TRAIN_PAGE_MIX, seed: int = 0,
                   split: str = "train") -> list[Page]:
    """`n` pages of one split whose category and column counts follow `mix` exactly."""
    if split not in PAGE_SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {sorted(PAGE_SPLITS)}")
    pages = []
    for i, (category, columns) in enumerate(_layouts(n, mix, seed, split)):
        flags = np.random.default_rng([seed, PAGE_SPLITS[split], i, 7]).random(3)
        pages.append(make_page(seed, split, i, category, columns,
                               ruled=bool(flags[0] < mix.ruled_rate),
                               numbered=bool(flags[1] < mix.numbered_rate),
                               noisy=bool(flags[2] < mix.formulas.noise_rate)))
    return pages


def make_page_splits(n_train: int, n_validation: int, n_test: int,
                     seed: int = 0) -> dict[str, list[Page]]:
    return {"train": generate_pages(n_train, TRAIN_PAGE_MIX, seed, "train"),
            "validation": generate_pages(n_validation, TRAIN_PAGE_MIX, seed, "validation"),
            "offline-test": generate_pages(n_test, OFFLINE_PAGE_MIX, seed, "offline-test")}
