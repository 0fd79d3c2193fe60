"""The formula dataset: categories, mixes, deterministic splits and simulated online traffic.

A category is a style × level pair, e.g. ``handwritten/middle``. A *mix* gives each category a
weight and says how many images carry scan noise. The offline test's mix (`OFFLINE_MIX`) leans
to printed, elementary, clean formulas — the kind a team collects first — while the simulated
online traffic (`ONLINE_MIX`) is mostly handwritten and noisier. That gap is what abvoc's online
evaluation is there to find.

Every sample is drawn from its own generator seeded by (seed, split, index), so a split is the
same on every machine and a sample does not change when the split grows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from workloads.ocr.formulas import random_formula, to_latex
from workloads.ocr.render import render

STYLES = ("printed", "handwritten")
LEVELS = ("elementary", "middle")
CATEGORIES = tuple(f"{s}/{lv}" for s in STYLES for lv in LEVELS)
SPLITS = {"train": 1, "validation": 2, "offline-test": 3, "online": 4}


@dataclass(frozen=True)
class Mix:
    """Category weights (normalized on use) and the share of images with scan noise."""

    weights: tuple[tuple[str, float], ...]
    noise_rate: float = 0.0

    @classmethod
    def of(cls, weights: dict[str, float], noise_rate: float = 0.0) -> Mix:
        unknown = set(weights) - set(CATEGORIES)
        if unknown:
            raise ValueError(f"unknown categories {sorted(unknown)}; use {CATEGORIES}")
        if not 0.0 <= noise_rate <= 1.0:
            raise ValueError("noise_rate must be within [0, 1]")
        total = sum(weights.values())
        if total <= 0 or any(w < 0 for w in weights.values()):
            raise ValueError("mix weights must be non-negative with a positive sum")
        return cls(tuple((c, weights.get(c, 0.0) / total) for c in CATEGORIES), noise_rate)

    def as_dict(self) -> dict[str, Any]:
        return {"weights": dict(self.weights), "noise_rate": self.noise_rate}

    def probabilities(self) -> np.ndarray:
        return np.array([w for _, w in self.weights], dtype=np.float64)


# The offline test set a team would build first: mostly clean, printed, elementary.
OFFLINE_MIX = Mix.of(
    {"printed/elementary": 0.4, "printed/middle": 0.3,
     "handwritten/elementary": 0.2, "handwritten/middle": 0.1},
    noise_rate=0.1,
)
# What students actually send: photos of handwriting, more of it middle-school work.
ONLINE_MIX = Mix.of(
    {"printed/elementary": 0.15, "printed/middle": 0.2,
     "handwritten/elementary": 0.3, "handwritten/middle": 0.35},
    noise_rate=0.3,
)
PRINTED_ONLY_MIX = Mix.of({"printed/elementary": 0.5, "printed/middle": 0.5}, noise_rate=0.1)
BALANCED_MIX = Mix.of({c: 1.0 for c in CATEGORIES}, noise_rate=0.2)


@dataclass
class Sample:
    """One formula image with everything the stage models and the offline test need."""

    image: np.ndarray  # uint8 grayscale, white paper
    latex: str  # canonical LaTeX
    category: str
    noisy: bool
    classes: list[str]  # per-symbol class
    boxes: list[tuple[int, int, int, int]]  # per-symbol ink box x0, y0, x1, y1
    relations: list[tuple[int, str]]  # per-symbol (parent index or -1, relation)
    split: str = ""
    index: int = 0

    @property
    def style(self) -> str:
        return self.category.split("/")[0]

    @property
    def level(self) -> str:
        return self.category.split("/")[1]

    def truth(self) -> dict[str, Any]:
        """Ground truth in the same compact form as a prediction's stages."""
        return {"latex": self.latex, "classes": self.classes,
                "boxes": [list(b) for b in self.boxes],
                "relations": [[p, r] for p, r in self.relations]}


def make_sample(seed: int, split: str, index: int, category: str, noisy: bool) -> Sample:
    rng = np.random.default_rng([seed, SPLITS[split], index])
    style, level = category.split("/")
    tree = random_formula(rng, level)
    r = render(tree, style, rng, noisy=noisy)
    return Sample(r.image, to_latex(tree), category, noisy, r.classes, r.boxes, r.relations,
                  split, index)


def quota_categories(n: int, mix: Mix, seed: int, split: str) -> list[tuple[str, bool]]:
    """Exactly the mix's shares (largest remainder), in a seeded shuffled order."""
    probs = mix.probabilities()
    raw = probs * n
    counts = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - counts), kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    cats = [c for c, k in zip(CATEGORIES, counts, strict=True) for _ in range(k)]
    n_noisy = int(round(mix.noise_rate * n))
    rng = np.random.default_rng([seed, SPLITS[split], 10**9])
    order = rng.permutation(n)
    noisy = np.zeros(n, dtype=bool)
    noisy[rng.permutation(n)[:n_noisy]] = True
    return [(cats[i], bool(noisy[j])) for j, i in enumerate(order)]


def generate(n: int, mix: Mix, seed: int = 0, split: str = "train") -> list[Sample]:
    """`n` samples whose categories follow `mix` exactly (for training and offline tests)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {sorted(SPLITS)}")
    return [make_sample(seed, split, i, cat, noisy)
            for i, (cat, noisy) in enumerate(quota_categories(n, mix, seed, split))]


def make_splits(n_train: int, n_validation: int, n_test: int, seed: int = 0,
                train_mix: Mix = BALANCED_MIX,
                test_mix: Mix = OFFLINE_MIX) -> dict[str, list[Sample]]:
    """Train and validation follow `train_mix`; the offline test follows `test_mix`."""
    return {
        "train": generate(n_train, train_mix, seed, "train"),
        "validation": generate(n_validation, train_mix, seed, "validation"),
        "offline-test": generate(n_test, test_mix, seed, "offline-test"),
    }


def sample_requests(n: int, mix: Mix = ONLINE_MIX, seed: int = 0) -> Iterator[Sample]:
    """Simulated online traffic: each request's category is drawn independently from `mix`."""
    rng = np.random.default_rng([seed, SPLITS["online"], 10**9 + 1])
    probs = mix.probabilities()
    for i in range(n):
        cat = CATEGORIES[int(rng.choice(len(CATEGORIES), p=probs))]
        noisy = bool(rng.random() < mix.noise_rate)
        yield make_sample(seed, "online", i, cat, noisy)
