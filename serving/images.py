"""Request images: decoded once, checked against size and pixel limits, made grayscale uint8."""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from core.errors import AbvocError
from core.grayscale import gray_pixels

MAX_IMAGE_BYTES = 2 * 1024 * 1024
MAX_PIXELS = 4_000_000
MAX_SIDE = 4096
MIN_SIDE = 8
FORMATS = ("PNG", "JPEG")


@dataclass(frozen=True)
class ImageLimits:
    """How large a request's image may be, in bytes, pixels and pixels per side."""

    max_bytes: int
    max_pixels: int
    max_side: int


FORMULA = ImageLimits(MAX_IMAGE_BYTES, MAX_PIXELS, MAX_SIDE)
# A whole page (/v1/pages): a 300 dpi scan of A4 (2480x3508), US Letter or Legal (2550x4200).
PAGE = ImageLimits(12 << 20, 11_000_000, 6000)


def input_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def decode_image(data: bytes, limits: ImageLimits = FORMULA) -> np.ndarray:
    """A grayscale uint8 array, or a 400/413 error saying what to fix."""
    if not data:
        raise AbvocError("the image is empty; send a PNG or JPEG formula image")
    if len(data) > limits.max_bytes:
        raise AbvocError(f"the image is {len(data)} bytes; the limit is {limits.max_bytes}",
                         status=413)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            # Only these two decoders ever see request bytes: Pillow would otherwise hand an
            # EPS upload to Ghostscript, or try any of its other formats.
            image = Image.open(io.BytesIO(data), formats=FORMATS)
            width, height = image.size
            if (refused := size_error(width, height, limits)) is not None:
                raise refused
            gray = gray_pixels(image)  # 16-bit scaled, transparency laid on white paper
    except UnidentifiedImageError as exc:
        raise AbvocError("the image is not a PNG or JPEG file; send a PNG or JPEG") from exc
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise AbvocError(f"the image declares more than {limits.max_pixels} pixels; send a smaller "
                         "PNG or JPEG", status=413) from exc
    except (OSError, ValueError, SyntaxError) as exc:
        # Pillow's messages can carry object reprs; the caller needs only what to do.
        raise AbvocError("the image data is damaged or truncated and could not be decoded; "
                         "send a whole PNG or JPEG") from exc
    return gray


def size_error(width: int, height: int, limits: ImageLimits = FORMULA) -> AbvocError | None:
    """Why an image of this size is refused (413 over the limits, 400 under `MIN_SIDE`: an image
    with no pixels broke the detector), or None; one rule for uploads and dataset arrays."""
    if width * height > limits.max_pixels or max(width, height) > limits.max_side:
        return AbvocError(f"the image is {width}x{height} pixels; the limit is "
                          f"{limits.max_pixels} pixels and {limits.max_side} per side", status=413)
    if min(width, height) < MIN_SIDE:
        return AbvocError(f"the image is {width}x{height} pixels; each side must be at least "
                          f"{MIN_SIDE}")
    return None


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of a grayscale array (for clients, tests and traffic simulation)."""
    out = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8), mode="L").save(out, format="PNG")
    return out.getvalue()
