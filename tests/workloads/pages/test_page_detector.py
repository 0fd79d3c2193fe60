"""The map detector's targets and decoding on hand-made maps: boxes snap to the ink, a formula
the map broke in two comes back whole, a problem number beside it stays apart."""

from __future__ import annotations

import numpy as np

from workloads.ocr.pages.detector import CELL, OUT_H, OUT_W, decode, target
from workloads.ocr.pages.generator import PAGE_H, PAGE_W


def _sheet(*boxes: tuple[int, int, int, int]) -> np.ndarray:
    ink = np.zeros((PAGE_H, PAGE_W), bool)
    for x0, y0, x1, y1 in boxes:
        ink[y0:y1, x0:x1] = True
    return ink


def _map(*cells: tuple[int, int, int, int], value: float = 0.9) -> np.ndarray:
    prob = np.zeros((OUT_H, OUT_W), np.float32)
    for c0, r0, c1, r1 in cells:
        prob[r0:r1, c0:c1] = value
    return prob


def test_target_marks_the_core_of_each_box_only() -> None:
    t = target([(80, 160, 240, 200)])[0]
    rows, cols = np.nonzero(t)
    assert rows.min() * CELL >= 160 and (rows.max() + 1) * CELL <= 200 + CELL
    assert cols.min() * CELL >= 80 and (cols.max() + 1) * CELL <= 240
    assert t.sum() > 0 and t[:, : 80 // CELL].sum() == 0


def test_boxes_snap_to_the_ink_and_split_pieces_are_merged() -> None:
    # One formula: two blobs 8 px apart; the map lit them as two regions.
    ink = _sheet((100, 200, 150, 224), (158, 200, 220, 224), (40, 202, 70, 222))
    prob = _map((13, 25, 18, 28), (20, 25, 27, 28))
    found = decode(prob, ink, threshold=0.5)
    assert [box for box, _ in found] == [(100, 200, 220, 224)]
    assert found[0][1] == np.float32(0.9).round(4)
    # The problem number 30 px to the left, lit on its own, stays a box of its own.
    found = decode(prob + _map((5, 25, 9, 28), value=0.6), ink, threshold=0.5)
    assert sorted(box for box, _ in found) == [(40, 202, 70, 222), (100, 200, 220, 224)]


def test_nothing_lit_or_no_ink_means_no_boxes() -> None:
    ink = _sheet((100, 200, 150, 224))
    assert decode(np.zeros((OUT_H, OUT_W), np.float32), ink) == []
    assert decode(_map((13, 25, 18, 28)), np.zeros_like(ink)) == []
