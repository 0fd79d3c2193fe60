"""Glyph bitmaps: printed ones from the fonts matplotlib ships, handwritten-like ones drawn stroke
by stroke so that every sample writes each symbol differently (jitter, slant, thickness, elastic
distortion) instead of being one more font.

Bitmaps are float arrays of ink in [0, 1] (1 = black ink).
"""

from __future__ import annotations

import os
from functools import lru_cache

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy.ndimage import gaussian_filter, map_coordinates

Point = tuple[float, float]

_FONT_DIR = os.path.join(matplotlib.get_data_path(), "fonts", "ttf")
# family -> (upright file, italic file); Computer Modern lacks Greek and the operators in its
# Unicode map, so those fall back to STIX.
FONT_FAMILIES: dict[str, tuple[str, str]] = {
    "dejavu-sans": ("DejaVuSans.ttf", "DejaVuSans-Oblique.ttf"),
    "dejavu-serif": ("DejaVuSerif.ttf", "DejaVuSerif-Italic.ttf"),
    "stix": ("STIXGeneral.ttf", "STIXGeneralItalic.ttf"),
    "cm": ("cmr10.ttf", "cmmi10.ttf"),
}
_CM_UPRIGHT = set("0123456789+=()")
_CM_ITALIC = set("xyabn")
UNICODE = {"-": "\u2212", "\\times": "\u00d7", "\\div": "\u00f7", "\\alpha": "\u03b1",
           "\\beta": "\u03b2", "\\pi": "\u03c0", "\\theta": "\u03b8"}
ITALIC = {"x", "y", "a", "b", "n", "\\alpha", "\\beta", "\\pi", "\\theta"}


def _font_file(family: str, cls: str) -> str:
    upright, italic = FONT_FAMILIES[family]
    use_italic = cls in ITALIC
    if family == "cm":
        char = UNICODE.get(cls, cls)
        if use_italic and char in _CM_ITALIC:
            return italic
        if not use_italic and char in _CM_UPRIGHT:
            return upright
        upright, italic = FONT_FAMILIES["stix"]
    return italic if use_italic else upright


@lru_cache(maxsize=512)
def printed_master(family: str, cls: str) -> np.ndarray:
    """The glyph rendered large once and cropped to its ink; resized per use."""
    font = ImageFont.truetype(os.path.join(_FONT_DIR, _font_file(family, cls)), 96)
    canvas = Image.new("L", (200, 200), 0)
    ImageDraw.Draw(canvas).text((40, 20), UNICODE.get(cls, cls), fill=255, font=font)
    ink = np.asarray(canvas, dtype=np.float32) / 255.0
    ys, xs = np.nonzero(ink > 0.05)
    if len(ys) == 0:
        raise ValueError(f"font {family!r} renders no ink for {cls!r}")
    out = ink[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]
    out.setflags(write=False)
    return out


def resize_ink(ink: np.ndarray, width: int, height: int) -> np.ndarray:
    img = Image.fromarray(ink.astype(np.float32), mode="F")
    return np.asarray(img.resize((max(width, 1), max(height, 1)), Image.BILINEAR))


def printed_glyph(family: str, cls: str, box_w: float, box_h: float) -> np.ndarray:
    """The font glyph scaled to fit the box (aspect kept), at least one pixel thick."""
    master = printed_master(family, cls)
    gh, gw = master.shape
    scale = min(box_w / gw, box_h / gh)
    w = max(int(round(gw * scale)), 1)
    h = max(int(round(gh * scale)), 2 if gh < gw / 3 else 1)
    # Area-average, then darken faint anti-aliased strokes the way ink spreads on paper.
    small = np.asarray(Image.fromarray(master, mode="F").resize((w, h), Image.BOX))
    return np.clip(small, 0.0, 1.0) ** 0.6


# --------------------------------------------------------------------- handwritten strokes


def arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float, n: int = 14) -> list:
    """Points on an ellipse in the unit box (y down); angles in degrees, 90 = top."""
    t = np.radians(np.linspace(a0, a1, n))
    return [(cx + rx * np.cos(a), cy - ry * np.sin(a)) for a in t]


def _dot(x: float, y: float) -> list:
    return arc(x, y, 0.07, 0.07, 0, 360, 8)


STROKES: dict[str, list[list[Point]]] = {
    "0": [arc(0.5, 0.5, 0.42, 0.5, 90, 455)],
    "1": [[(0.2, 0.25), (0.55, 0.0), (0.55, 1.0)]],
    "2": [arc(0.5, 0.28, 0.4, 0.28, 160, -30) + [(0.08, 1.0), (0.95, 1.0)]],
    "3": [arc(0.48, 0.25, 0.36, 0.25, 150, -90) + arc(0.48, 0.74, 0.42, 0.26, 90, -150)],
    "4": [[(0.72, 1.0), (0.72, 0.0), (0.05, 0.68), (0.95, 0.68)]],
    "5": [[(0.88, 0.0), (0.2, 0.0), (0.16, 0.48)] + arc(0.5, 0.7, 0.4, 0.3, 140, -150)],
    "6": [arc(0.55, 0.5, 0.45, 0.5, 70, 195) + arc(0.5, 0.72, 0.38, 0.28, 190, -170)],
    "7": [[(0.08, 0.0), (0.92, 0.0), (0.38, 1.0)]],
    "8": [arc(0.5, 0.25, 0.32, 0.25, -90, 270), arc(0.5, 0.75, 0.4, 0.25, 90, 450)],
    "9": [arc(0.5, 0.28, 0.38, 0.28, 0, 365), [(0.88, 0.28), (0.78, 1.0)]],
    "+": [[(0.5, 0.0), (0.5, 1.0)], [(0.0, 0.5), (1.0, 0.5)]],
    "-": [[(0.0, 0.5), (1.0, 0.5)]],
    "\\times": [[(0.0, 0.0), (1.0, 1.0)], [(1.0, 0.0), (0.0, 1.0)]],
    "\\div": [[(0.0, 0.5), (1.0, 0.5)], _dot(0.5, 0.1), _dot(0.5, 0.9)],
    "=": [[(0.0, 0.15), (1.0, 0.15)], [(0.0, 0.85), (1.0, 0.85)]],
    "(": [arc(1.25, 0.5, 1.0, 0.55, 115, 245)],
    ")": [arc(-0.25, 0.5, 1.0, 0.55, 65, -65)],
    "x": [arc(0.0, 0.5, 0.5, 0.5, 62, -62), arc(1.0, 0.5, 0.5, 0.5, 118, 242)],
    "y": [[(0.1, 0.0), (0.5, 0.55)], [(0.9, 0.0), (0.5, 0.55), (0.22, 1.0)]],
    "a": [arc(0.47, 0.5, 0.38, 0.48, 30, 390), [(0.85, 0.0), (0.85, 1.0)]],
    "b": [[(0.15, 0.0), (0.15, 1.0)], arc(0.48, 0.7, 0.33, 0.3, 180, -180)],
    "n": [[(0.12, 0.0), (0.12, 1.0)], arc(0.5, 0.42, 0.38, 0.4, 180, 0) + [(0.88, 1.0)]],
    "\\alpha": [[(1.0, 1.0)] + arc(0.42, 0.5, 0.38, 0.48, 30, 330) + [(1.0, 0.0)]],
    "\\beta": [[(0.18, 1.0), (0.18, 0.2)] + arc(0.46, 0.2, 0.28, 0.18, 180, -90)
               + arc(0.46, 0.58, 0.36, 0.2, 90, -90) + [(0.18, 0.74)]],
    "\\pi": [[(0.0, 0.12), (1.0, 0.05)], [(0.3, 0.08), (0.25, 1.0)], [(0.72, 0.07), (0.78, 1.0)]],
    "\\theta": [arc(0.5, 0.5, 0.4, 0.5, 0, 365), [(0.1, 0.5), (0.9, 0.5)]],
}


class Hand:
    """One writer's habits for one sample: slant, thickness and how shaky the strokes are."""

    def __init__(self, rng: np.random.Generator, em: float, steady: bool = False) -> None:
        self.rng = rng
        self.em = em
        self.steady = steady  # a ruler-straight pen for the printed bars and radicals
        if steady:
            self.slant, self.shake, self.elastic = 0.0, 0.0, 0.0
            self.thickness = max(0.06 * em, 1.3)
        else:
            self.slant = float(rng.normal(0.0, 0.15))
            self.thickness = float(rng.uniform(0.055, 0.1) * em)
            self.shake = float(rng.uniform(0.01, 0.035) * em)
            self.elastic = float(rng.uniform(0.6, 1.6))

    def glyph(self, cls: str, box_w: float, box_h: float) -> tuple[np.ndarray, float, float]:
        """Ink for one symbol written in a box; returns (ink, x offset, y offset) of the ink's
        top-left corner relative to the box's top-left corner."""
        strokes = STROKES[cls]
        return self.draw(strokes, box_w, box_h)

    def draw(self, strokes: list[list[Point]], box_w: float, box_h: float,
             jitter: bool = True) -> tuple[np.ndarray, float, float]:
        rng = self.rng
        angle = 0.0 if self.steady else np.radians(rng.normal(0.0, 3.0))
        cos_a, sin_a = np.cos(angle), np.sin(angle)
        sx = 1.0 if self.steady else rng.uniform(0.88, 1.08)
        paths = []
        for stroke in strokes:
            pts = np.asarray(stroke, dtype=np.float64)
            px = (pts[:, 0] - 0.5) * box_w * sx
            py = (pts[:, 1] - 0.5) * box_h
            px = px - self.slant * py
            rx, ry = cos_a * px - sin_a * py, sin_a * px + cos_a * py
            if jitter and not self.steady:
                walk = rng.normal(0.0, self.shake, size=(len(pts), 2))
                walk = np.cumsum(walk, axis=0) / np.sqrt(np.arange(1, len(pts) + 1))[:, None]
                rx, ry = rx + walk[:, 0], ry + walk[:, 1]
            paths.append(np.stack([rx, ry], axis=1))
        return self._rasterize(paths, box_w, box_h)

    def _rasterize(self, paths: list[np.ndarray], box_w: float,
                   box_h: float) -> tuple[np.ndarray, float, float]:
        ss = 4  # supersampling for anti-aliased strokes
        margin = self.thickness + 3.0
        allpts = np.concatenate(paths)
        x0, y0 = allpts.min(axis=0) - margin
        x1, y1 = allpts.max(axis=0) + margin
        w, h = int(np.ceil(x1 - x0)), int(np.ceil(y1 - y0))
        canvas = Image.new("L", (w * ss, h * ss), 0)
        draw = ImageDraw.Draw(canvas)
        width = max(int(round(self.thickness * ss)), ss)
        for path in paths:
            pts = [((x - x0) * ss, (y - y0) * ss) for x, y in path]
            draw.line(pts, fill=255, width=width, joint="curve")
            for x, y in (pts[0], pts[-1]):
                r = width / 2
                draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
        small = canvas.resize((w, h), Image.BOX)
        ink = np.asarray(small, dtype=np.float32) / 255.0
        if self.elastic > 0 and min(w, h) > 4:
            ink = elastic(ink, self.rng, alpha=self.elastic, sigma=2.5)
        # Offsets of the canvas' top-left relative to the box's top-left (box centred at 0,0).
        return ink, float(x0 + box_w / 2), float(y0 + box_h / 2)


def elastic(ink: np.ndarray, rng: np.random.Generator, alpha: float, sigma: float) -> np.ndarray:
    """Smooth random displacement of every pixel (Simard et al. 2003), in pixels."""
    h, w = ink.shape
    dx = gaussian_filter(rng.uniform(-1, 1, (h, w)), sigma) * alpha * sigma
    dy = gaussian_filter(rng.uniform(-1, 1, (h, w)), sigma) * alpha * sigma
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    out = map_coordinates(ink, [yy + dy, xx + dx], order=1, mode="constant")
    return np.clip(out, 0.0, 1.0).astype(np.float32)
