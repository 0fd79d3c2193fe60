"""Page cleaning: ruled lines go, strokes crossing them stay, letters on them keep no stub."""

from __future__ import annotations

import numpy as np
from PIL import Image

from workloads.ocr.dataset import BALANCED_MIX, generate
from workloads.ocr.pages.algorithmic import CutParams, extract
from workloads.ocr.pages.clean import binarize, crop, fit, remove_rules, rule_rows
from workloads.ocr.pages.metrics import iou_matrix


def test_ruled_line_removed_crossing_stroke_kept_resting_letter_left_clean() -> None:
    page = np.zeros((60, 200), bool)
    page[30:32, 5:195] = True  # a ruled line, two rows
    page[20:42, 50:52] = True  # a stroke crossing it
    page[22:30, 100:110] = True  # a letter resting on it
    assert list(rule_rows(page)) == [30, 31]
    clean = remove_rules(page)
    assert clean[30:32, 50:52].all()  # the crossing stroke stays whole
    assert not clean[30:32, 100:110].any()  # no stub of line under the letter
    assert not clean[30:32, 5:48].any() and clean[22:30, 100:110].all()


def test_a_long_fraction_bar_is_not_a_ruled_line() -> None:
    page = np.zeros((60, 200), bool)
    page[30:32, 20:90] = True
    assert len(rule_rows(page)) == 0 and remove_rules(page)[30:32, 20:90].all()


def test_fit_scales_into_the_sheet_and_back() -> None:
    image = np.full((2000, 1440), 255, np.uint8)
    sheet = fit(image)
    assert sheet.image.shape == (1000, 720) and sheet.scale == 0.5
    assert sheet.to_page((10, 20, 30, 40)) == (20, 40, 60, 80)


def test_crop_pads_to_what_the_ocr_takes() -> None:
    image = np.full((100, 100), 255, np.uint8)
    image[40:50, 30:60] = 0
    out = crop(image, (30, 40, 60, 50))
    assert out.shape == (32, 42) and (out == 0).sum() == 300


def _pasted_at_3x(latex: tuple[str, ...]) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """Formula images with `=` (their thin bars) pasted 3x as large, bicubic, onto a white A4
    page at 300 dpi; their ink's boxes there."""
    samples = {s.latex: s for s in generate(200, BALANCED_MIX, seed=1, split="offline-test")}
    page = np.full((3508, 2480), 255, np.uint8)
    boxes = []
    for k, name in enumerate(latex):
        image = samples[name].image
        big = np.asarray(Image.fromarray(image).resize(
            (image.shape[1] * 3, image.shape[0] * 3), Image.BICUBIC))
        x, y = 200 + 1100 * (k % 2), 300 + 400 * (k // 2)
        page[y:y + big.shape[0], x:x + big.shape[1]] = big
        rows, cols = np.flatnonzero((big < 128).any(axis=1)), np.flatnonzero((big < 128).any(0))
        boxes.append((x + cols[0], y + rows[0], x + cols[-1] + 1, y + rows[-1] + 1))
    return page, boxes


def test_a_300_dpi_page_keeps_its_thin_strokes_and_whole_formulas() -> None:
    """Shrunk by a plain average (scale 0.285) the `=` bars fell below INK: '4+6=2' split at
    the gap they left and its left part was dropped as a problem number."""
    latex = ("(7)=2", "4+6=2", "15-8=77", "35\\times5=58")
    page, truth = _pasted_at_3x(latex)
    sheet = fit(page)
    assert sheet.scale < 0.3
    found = [sheet.to_page(box) for box, _ in extract(binarize(sheet.image),
                                                      CutParams(row_gap=12, word_gap=16))]
    assert len(found) == len(truth), found
    assert (iou_matrix(found, truth) >= 0.5).any(axis=0).all(), (found, truth)
