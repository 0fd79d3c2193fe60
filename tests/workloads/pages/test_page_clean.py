"""Page cleaning: ruled lines go, strokes crossing them stay, letters on them keep no stub."""

from __future__ import annotations

import numpy as np

from workloads.ocr.pages.clean import crop, fit, remove_rules, rule_rows


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
