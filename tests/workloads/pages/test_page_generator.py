"""The page generator: the same seed gives the same pages, and the truth fits the ink."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from workloads.ocr.pages.generator import (
    OFFLINE_PAGE_MIX,
    PAGE_H,
    PAGE_W,
    generate_pages,
    make_page_splits,
)
from workloads.ocr.pages.metrics import iou_matrix


def test_same_seed_same_pages_other_seed_other_pages() -> None:
    a = generate_pages(4, seed=3, split="validation")
    b = generate_pages(4, seed=3, split="validation")
    c = generate_pages(4, seed=4, split="validation")
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x.image, y.image)
        assert x.truth() == y.truth() and x.slices() == y.slices() and x.labels == y.labels
    assert any(not np.array_equal(x.image, z.image) for x, z in zip(a, c, strict=True))


def test_splits_are_distinct_and_follow_the_mix() -> None:
    splits = make_page_splits(4, 2, 8, seed=0)
    assert [len(splits[s]) for s in ("train", "validation", "offline-test")] == [4, 2, 8]
    assert not np.array_equal(splits["train"][0].image, splits["offline-test"][0].image)
    test = splits["offline-test"]
    # 8 pages over 4 categories x 2 layouts, equal weights: one page of each cell.
    assert Counter((p.category, p.columns) for p in test) == Counter(
        {(p.category, p.columns): 1 for p in test})
    assert len(Counter((p.category, p.columns) for p in test)) == 8
    assert OFFLINE_PAGE_MIX.as_dict()["two_column_rate"] == 0.5


def test_truth_boxes_hold_ink_inside_the_page_and_apart() -> None:
    for page in generate_pages(6, seed=1, split="train"):
        assert page.image.shape == (PAGE_H, PAGE_W) and page.image.dtype == np.uint8
        assert page.formulas and all(f.latex for f in page.formulas)
        for x0, y0, x1, y1 in page.boxes:
            assert 0 <= x0 < x1 <= PAGE_W and 0 <= y0 < y1 <= PAGE_H
            assert (page.image[y0:y1, x0:x1] < 128).any()
        overlaps = iou_matrix(page.boxes, page.boxes) - np.eye(len(page.boxes))
        assert overlaps.max() == 0.0
        if page.labels:  # problem numbers are not formulas
            assert iou_matrix(page.labels, page.boxes).max() == 0.0
        if page.columns == 2:
            assert min(b[0] for b in page.boxes) < PAGE_W // 2 < max(b[0] for b in page.boxes)


def test_unknown_split_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown split"):
        generate_pages(1, split="online")
