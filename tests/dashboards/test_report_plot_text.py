"""The report's plots keep their text as SVG text, for the browser to shape
(dashboards.report.plots)."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
from PIL import Image

from dashboards.report import plots
from tests.support.browser import chromium


def _svg_texts(uri: str) -> list[str]:
    """The text of every <text> element of a plot's SVG data URI."""
    prefix = "data:image/svg+xml;base64,"
    assert uri.startswith(prefix)
    svg = base64.b64decode(uri[len(prefix):]).decode()
    return ["".join(t.itertext()) for t in ElementTree.fromstring(svg).iter(
        "{http://www.w3.org/2000/svg}text")]


def test_plots_draw_names_with_dollar_signs_as_text() -> None:
    texts = _svg_texts(plots.bars(["$x^{$", "b"], [1.0, 2.0], "a $\\frac{$"))
    assert "$x^{$" in texts and "a $\\frac{$" in texts
    assert _svg_texts(plots.offline_online([], "none"))


ARABIC_HINDI = ["مؤشر خاطئ", "घातांक", "क्षेत्र"]


def test_names_in_joining_and_reordering_scripts_stay_text_for_the_browser_to_shape() -> None:
    """Matplotlib would draw Arabic letters unjoined and left to right, and a Devanagari
    vowel sign on the wrong side of its consonant; kept as SVG text, whole, the browser
    shapes them as it shapes the tables."""
    texts = _svg_texts(plots.bars(ARABIC_HINDI, [1.0, 2.0, 0.5], "घातांक गलत"))
    assert set(ARABIC_HINDI) <= set(texts) and "घातांक गलत" in texts


def test_chromium_shapes_svg_text_as_it_shapes_a_page(tmp_path: Path) -> None:
    """What the plots rely on: Chromium (which prints the PDF) draws a Devanagari word held as
    text in an SVG image as it draws the same word in a page, and not as its letters drawn one
    by one, unshaped, which is how matplotlib's own glyph outlines would draw it."""
    word = "क्षेत्र"  # a conjunct (क्ष + े) and another (त्र): shaping changes the width
    font = "font: 40px 'Noto Sans Devanagari'"
    svg = (f"<svg xmlns='http://www.w3.org/2000/svg' width='380' height='100'>"
           f"<text x='10' y='70' style=\"{font}\">{word}</text></svg>")
    shown = {
        "svg": f"<img src='data:image/svg+xml;base64,{base64.b64encode(svg.encode()).decode()}'>",
        "html": f"<span style=\"{font}\">{word}</span>",
        # each letter in a box of its own: nothing joins across boxes, as with outlines
        "letters": "".join(f"<span style=\"{font}; display: inline-block\">{c}</span>"
                           for c in word),
    }
    widths = {}
    with chromium(width=400, height=200) as driver:
        for name, markup in shown.items():
            page = tmp_path / f"{name}.html"
            page.write_text("<!doctype html><meta charset='utf-8'><body style='margin:0'>"
                            + markup, encoding="utf-8")
            driver.get(page.resolve().as_uri())
            ink = np.asarray(Image.open(io.BytesIO(driver.get_screenshot_as_png()))
                             .convert("L")) < 128
            cols = np.nonzero(ink.any(axis=0))[0]
            widths[name] = int(cols.max() - cols.min() + 1)
    assert abs(widths["svg"] - widths["html"]) <= 2, widths
    assert abs(widths["svg"] - widths["letters"]) > 5, widths
