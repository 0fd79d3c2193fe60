"""What both extraction candidates do to a page first: fit it to the working sheet, binarize it,
take the ruled lines out, and cut formula images for the OCR.

Any page size comes in (a phone photo, a 300 dpi scan); it is scaled to fit the working sheet
(the generator's page size) and padded with white, so the networks see one shape and the
thresholds below are in one scale. Boxes go back to the caller's pixels by `to_page`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from workloads.ocr.pages.generator import PAGE_H, PAGE_W

INK = 0.4  # darkness above which a pixel is ink
RULE_RUN = 0.4  # a ruled line runs unbroken across this share of the sheet's width


@dataclass(frozen=True)
class Sheet:
    """A page fitted to the working sheet: the uint8 image and how it was scaled."""

    image: np.ndarray  # (PAGE_H, PAGE_W) uint8, white paper
    scale: float  # sheet pixels per page pixel
    page_shape: tuple[int, int]

    def to_page(self, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        h, w = self.page_shape
        x0, y0, x1, y1 = (int(round(v / self.scale)) for v in box)
        return (min(max(x0, 0), w), min(max(y0, 0), h), min(max(x1, 0), w), min(max(y1, 0), h))


def fit(image: np.ndarray) -> Sheet:
    """The page scaled (aspect kept) into the working sheet, top-left, padded with white."""
    h, w = image.shape
    scale = min(PAGE_W / w, PAGE_H / h)
    if abs(scale - 1.0) < 1e-9:
        return Sheet(np.ascontiguousarray(image), 1.0, (h, w))
    nw, nh = max(int(round(w * scale)), 1), max(int(round(h * scale)), 1)
    resized = _resized(image, nw, nh)
    sheet = np.full((PAGE_H, PAGE_W), 255, np.uint8)
    sheet[:nh, :nw] = resized[:PAGE_H, :PAGE_W]
    return Sheet(sheet, scale, (h, w))


def _resized(image: np.ndarray, nw: int, nh: int) -> np.ndarray:
    """The page resized to `nw` x `nh`, keeping thin strokes when it shrinks. A plain average
    thins a stroke's darkness with the scale: on a 300 dpi page (scale 0.285) the `=` and
    fraction bars fell below INK, and formulas split at the gap they left. Shrunk by half or
    more, the page is averaged over areas to twice the sheet's size, then each 2x2 block keeps
    its darkest pixel: a stroke about half a sheet pixel wide stays as dark as it was, while a
    speck much smaller than that is still averaged away with the paper around it. Shrunk by
    less, that step would only thicken every stroke (the 2x2 blocks would hold enlarged
    pixels; validation pages enlarged 1.15x to 1.6x lost precision), so the plain bilinear
    resize stays, as it does for a page smaller than the sheet."""
    h, w = image.shape
    if 2 * nw > w or 2 * nh > h:
        return np.asarray(Image.fromarray(image).resize((nw, nh), Image.BILINEAR))
    twice = np.asarray(Image.fromarray(image).resize((2 * nw, 2 * nh), Image.BOX))
    return twice.reshape(nh, 2, nw, 2).min(axis=(1, 3))


def darkness(image: np.ndarray) -> np.ndarray:
    return 1.0 - image.astype(np.float32) / 255.0


def _longest_runs(binary: np.ndarray) -> np.ndarray:
    """Per row, the longest run of ink pixels (after bridging breaks of a few pixels)."""
    bridged = ndimage.binary_closing(binary, structure=np.ones((1, 9), bool))
    padded = np.pad(bridged.astype(np.int8), ((0, 0), (1, 1)))
    out = np.zeros(binary.shape[0], dtype=np.int64)
    for y in np.flatnonzero(bridged.sum(axis=1) >= RULE_RUN * binary.shape[1]):
        edges = np.flatnonzero(np.diff(padded[y]))
        out[y] = int((edges[1::2] - edges[::2]).max())
    return out


def rule_rows(binary: np.ndarray) -> np.ndarray:
    """Rows that belong to a ruled line (a long unbroken horizontal run of ink)."""
    return np.flatnonzero(_longest_runs(binary) >= RULE_RUN * binary.shape[1])


def remove_rules(binary: np.ndarray) -> np.ndarray:
    """The binary page without its ruled lines; a stroke crossing a line keeps its pixels there
    (ink two rows above and below the line band). A letter sitting on the line loses the row or
    two it shares with it rather than keeping a stub of line: the OCR reads those better."""
    rows = rule_rows(binary)
    if not len(rows):
        return binary
    out = binary.copy()
    h = binary.shape[0]
    for band in np.split(rows, np.flatnonzero(np.diff(rows) > 1) + 1):
        a, b = int(band[0]), int(band[-1]) + 1
        above = binary[max(a - 3, 0):max(a - 1, 0)].any(axis=0)
        below = binary[min(b + 1, h):min(b + 3, h)].any(axis=0)
        out[a:b] &= (above & below)[None, :]
    return out


def binarize(image: np.ndarray) -> np.ndarray:
    """Ink pixels of a sheet, ruled lines removed."""
    return remove_rules(darkness(image) > INK)


def clean_image(image: np.ndarray, binary: np.ndarray) -> np.ndarray:
    """The sheet with every pixel off the cleaned ink set to paper (for the OCR's crops)."""
    grown = ndimage.binary_dilation(binary, iterations=1)
    return np.where(grown, image, 255).astype(np.uint8)


def components(binary: np.ndarray, min_pixels: int = 6) -> list[tuple[int, int, int, int]]:
    """Boxes of the connected ink components, specks under `min_pixels` dropped."""
    labels, n = ndimage.label(binary, structure=np.ones((3, 3), bool))
    if n == 0:
        return []
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    boxes = []
    for i, sl in enumerate(ndimage.find_objects(labels), 1):
        if sl is not None and sizes[i] >= min_pixels:
            boxes.append((sl[1].start, sl[0].start, sl[1].stop, sl[0].stop))
    return boxes


def crop(image: np.ndarray, box: tuple[int, int, int, int], pad: int = 6) -> np.ndarray:
    """One formula image as the OCR takes it: the box on white paper, `pad` pixels around it,
    at least 32 pixels high."""
    x0, y0, x1, y1 = box
    part = image[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)]
    h, w = part.shape
    top = pad + max(32 - (h + 2 * pad), 0) // 2
    out = np.full((max(h + 2 * pad, 32), w + 2 * pad), 255, np.uint8)
    out[top:top + h, pad:pad + w] = part
    return out
