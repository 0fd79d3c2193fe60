from collections import Counter

import numpy as np
import pytest

from workloads.ocr import converter
from workloads.ocr.dataset import (
    BALANCED_MIX,
    CATEGORIES,
    OFFLINE_MIX,
    ONLINE_MIX,
    Mix,
    generate,
    make_splits,
    quota_categories,
    sample_requests,
)


def test_same_seed_gives_identical_images_and_labels() -> None:
    a = generate(24, BALANCED_MIX, seed=7, split="train")
    b = generate(24, BALANCED_MIX, seed=7, split="train")
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x.image, y.image)
        assert (x.latex, x.classes, x.boxes, x.relations) == (y.latex, y.classes, y.boxes,
                                                              y.relations)


def test_other_seed_or_split_gives_other_samples() -> None:
    a = generate(12, BALANCED_MIX, seed=1, split="train")
    b = generate(12, BALANCED_MIX, seed=2, split="train")
    c = generate(12, BALANCED_MIX, seed=1, split="validation")
    assert [s.latex for s in a] != [s.latex for s in b]
    assert [s.latex for s in a] != [s.latex for s in c]


def test_splits_follow_their_mixes_exactly() -> None:
    splits = make_splits(8, 4, 20, seed=0)
    counts = Counter(s.category for s in splits["offline-test"])
    assert counts == {"printed/elementary": 8, "printed/middle": 6,
                      "handwritten/elementary": 4, "handwritten/middle": 2}
    assert sum(s.noisy for s in splits["offline-test"]) == 2


def test_offline_mix_leans_printed_and_elementary_unlike_online_traffic() -> None:
    off, on = dict(OFFLINE_MIX.weights), dict(ONLINE_MIX.weights)
    assert off["printed/elementary"] > on["printed/elementary"]
    assert off["handwritten/middle"] < on["handwritten/middle"]
    assert OFFLINE_MIX.noise_rate < ONLINE_MIX.noise_rate


def test_quota_is_exact_for_any_size() -> None:
    for n in (1, 7, 100, 333):
        cats = Counter(c for c, _ in quota_categories(n, OFFLINE_MIX, 0, "offline-test"))
        assert sum(cats.values()) == n
        for cat, w in OFFLINE_MIX.weights:
            assert abs(cats.get(cat, 0) - w * n) < 1


def test_online_traffic_is_deterministic_and_drawn_from_its_mix() -> None:
    a = list(sample_requests(300, ONLINE_MIX, seed=3))
    b = list(sample_requests(300, ONLINE_MIX, seed=3))
    assert [s.latex for s in a] == [s.latex for s in b]
    share = Counter(s.category for s in a)
    for cat, w in ONLINE_MIX.weights:
        assert abs(share[cat] / 300 - w) < 0.09


def test_ground_truth_is_consistent() -> None:
    for s in generate(40, BALANCED_MIX, seed=5):
        assert s.image.dtype == np.uint8 and s.image.ndim == 2
        assert 32 <= s.image.shape[0] <= 96
        h, w = s.image.shape
        assert len(s.classes) == len(s.boxes) == len(s.relations)
        for x0, y0, x1, y1 in s.boxes:
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        assert converter.to_latex(s.classes, s.relations) == s.latex
        assert s.category in CATEGORIES


def test_levels_differ_in_content() -> None:
    samples = generate(80, BALANCED_MIX, seed=0)
    middle = "".join(s.latex for s in samples if s.level == "middle")
    elementary = "".join(s.latex for s in samples if s.level == "elementary")
    assert "^" in middle and "\\sqrt" in middle
    assert "^" not in elementary and "\\sqrt" not in elementary


def test_bad_mix_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown categories"):
        Mix.of({"cursive/advanced": 1.0})
    with pytest.raises(ValueError, match="noise_rate"):
        Mix.of({"printed/middle": 1.0}, noise_rate=2.0)
