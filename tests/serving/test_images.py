"""Request images are decoded by the PNG and JPEG decoders only, with errors that say what to do
and never echo Pillow's object reprs."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import EpsImagePlugin, Image

from core.errors import AbvocError
from serving.images import decode_image, encode_png


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
