"""Request images are decoded by the PNG and JPEG decoders only, with errors that say what to do
and never echo Pillow's object reprs."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import EpsImagePlugin, Image

from core.errors import AbvocError
from serving.images import PAGE, decode_image, encode_png


def _saved(fmt: str) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.full((32, 48), 200, dtype=np.uint8), mode="L").save(out, format=fmt)
    return out.getvalue()


def test_png_and_jpeg_are_decoded() -> None:
    for data in (_saved("PNG"), _saved("JPEG")):
        assert decode_image(data).shape == (32, 48)
    assert decode_image(encode_png(np.zeros((9, 9), np.uint8))).dtype == np.uint8


def test_an_eps_upload_never_reaches_ghostscript(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = EpsImagePlugin.Ghostscript

    def recording(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", recording)
    eps = _saved("EPS")
    assert eps.startswith(b"%!PS")
    with pytest.raises(AbvocError) as refused:
        decode_image(eps)
    assert refused.value.status == 400
    assert "PNG or JPEG" in refused.value.message
    assert calls == []


@pytest.mark.parametrize("data", [b"not an image", _saved("GIF"), _saved("BMP"),
                                  _saved("PNG")[:60], _saved("JPEG")[:200]])
def test_other_bytes_get_a_message_without_reprs(data: bytes) -> None:
    with pytest.raises(AbvocError) as refused:
        decode_image(data)
    assert refused.value.status == 400
    assert "PNG or JPEG" in refused.value.message
    assert "0x" not in refused.value.message and "object at" not in refused.value.message


FORMULA = Path(__file__).resolve().parents[2] / "examples" / "formula.png"


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _sixteen_bit(gray: np.ndarray) -> Image.Image:
    return Image.fromarray(gray.astype(np.uint16) * 257)


def _ink_on_clear_rgba(gray: np.ndarray) -> Image.Image:
    black = np.zeros_like(gray)
    return Image.fromarray(np.stack([black, black, black, 255 - gray], axis=-1), mode="RGBA")


def _ink_on_clear_la(gray: np.ndarray) -> Image.Image:
    return Image.fromarray(np.stack([np.zeros_like(gray), 255 - gray], axis=-1), mode="LA")


def _ink_on_clear_palette(gray: np.ndarray) -> Image.Image:
    """Every palette entry black, entry i `255 - i` opaque (a tRNS chunk): ink as alpha."""
    image = Image.fromarray(gray, mode="L").convert("P")
    image.putpalette([0, 0, 0] * 256)
    image.info["transparency"] = bytes(255 - i for i in range(256))
    return image


def _paper_keyed_gray(gray: np.ndarray) -> Image.Image:
    """8-bit gray whose black is the tRNS color: black paper made transparent, ink kept gray."""
    keyed = np.where(gray == 255, 0, np.maximum(gray, 1)).astype(np.uint8)
    image = Image.fromarray(keyed, mode="L")
    image.info["transparency"] = 0
    return image


@pytest.mark.parametrize("variant", [_sixteen_bit, _ink_on_clear_rgba, _ink_on_clear_la,
                                     _ink_on_clear_palette, _paper_keyed_gray])
def test_deep_and_transparent_pngs_read_as_the_8_bit_original(variant) -> None:  # noqa: ANN001
    """Pillow's convert("L") clipped 16-bit gray to white and read clear paper as black."""
    original = decode_image(FORMULA.read_bytes())
    expected = np.where(original == 0, 1, original) if variant is _paper_keyed_gray else original
    assert variant is not _sixteen_bit or Image.open(io.BytesIO(_png(variant(original)))).mode \
        in ("I;16", "I")
    assert np.array_equal(decode_image(_png(variant(original))), expected)
    assert np.array_equal(decode_image(_png(variant(original)), PAGE), expected)
