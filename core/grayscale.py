"""An opened PNG or JPEG as the grayscale uint8 array every reader of formulas and pages takes.

Pillow's `convert("L")` is right for 8-bit gray and color only: it clips 16-bit gray (I;16, or I
as older Pillow opens it) at 255, so every paper pixel reads as white and the ink vanishes, and it
drops alpha, so black ink on transparent paper (RGBA, LA, P or L/RGB with a tRNS color) reads as
black on black. Here high-bit-depth images are scaled to 8 bits and any alpha is laid onto white
paper first; the common 8-bit L and RGB case stays one `convert`.

A phone stores a photo as its sensor saw it and says in the EXIF orientation tag how to turn it
upright; every viewer (the customer's, the annotator's browser) shows it turned, so the pixels are
turned here too (`upright`), or a page was cut into formulas lying on their side and its boxes
were not where the customer sees them (`oriented_size` gives a header's size the same way).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

_PLAIN = frozenset(("L", "RGB", "1", "CMYK", "YCbCr"))  # 8-bit, no alpha: convert("L") is right
_SIXTEEN = frozenset(("I;16", "I;16L", "I;16B", "I;16N", "I"))  # PNG's 16-bit gray in Pillow
_ALPHA = frozenset(("RGBA", "LA", "PA", "RGBa", "La"))
_ORIENTATION = 0x0112  # EXIF: 1 upright; 2-8 mirrored and/or turned; 5-8 swap the sides
_TURNS = {2: (Image.Transpose.FLIP_LEFT_RIGHT,), 3: (Image.Transpose.ROTATE_180,),
          4: (Image.Transpose.FLIP_TOP_BOTTOM,), 5: (Image.Transpose.TRANSPOSE,),
          6: (Image.Transpose.ROTATE_270,), 7: (Image.Transpose.TRANSVERSE,),
          8: (Image.Transpose.ROTATE_90,)}


def gray_pixels(image: Image.Image) -> np.ndarray:
    """The image as grayscale uint8, upright as viewers show it: 16-bit scaled to 8 bits,
    transparency composited on white."""
    image = upright(image)
    mode = image.mode
    if mode in _PLAIN and "transparency" not in image.info:
        return np.asarray(image.convert("L"), dtype=np.uint8)
    if mode in _SIXTEEN or mode == "F":
        return _high_depth(image)
    if mode in _ALPHA or "transparency" in image.info:
        rgba = image.convert("RGBA")  # P's palette alpha, L's and RGB's tRNS color included
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(paper, rgba).convert("L"), dtype=np.uint8)
    return np.asarray(image.convert("L"), dtype=np.uint8)


def _high_depth(image: Image.Image) -> np.ndarray:
    """16-bit gray (and 32-bit integer, which is how older Pillow opens it) as 8 bits, rounded
    so that v*257 reads back as v; a float image keeps Pillow's 0..255 scale, rounded rather than
    truncated. A tRNS gray value is paper."""
    values = np.asarray(image)
    if image.mode == "F":
        gray = np.clip(np.rint(values.astype(np.float64)), 0, 255).astype(np.uint8)
    else:
        wide = np.clip(values.astype(np.int64), 0, 65535)
        gray = ((wide + 128) // 257).astype(np.uint8)
    clear = image.info.get("transparency")
    if isinstance(clear, int):
        gray[values == clear] = 255
    return gray


def orientation(image: Image.Image) -> int:
    """The EXIF orientation an opened image's header declares (1, upright, where none or
    unreadable): read from the metadata Pillow parsed on opening, so no pixels are decoded."""
    raw = image.info.get("exif")
    if not isinstance(raw, bytes):
        return 1
    try:
        exif = Image.Exif()
        exif.load(raw)
        value = exif.get(_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - damaged metadata: shown as stored, as viewers do
        return 1
    return value if isinstance(value, int) and value in _TURNS else 1


def upright(image: Image.Image) -> Image.Image:
    """`image` turned as its EXIF orientation says (itself where it is upright)."""
    for turn in _TURNS.get(orientation(image), ()):
        image = image.transpose(turn)
    return image


def oriented_size(image: Image.Image) -> tuple[int, int]:
    """(width, height) of an opened image as viewers show it: sides swapped for 5-8."""
    width, height = image.size
    return (height, width) if orientation(image) >= 5 else (width, height)
