"""BYTES tensors read as text, for a model that takes text (ONNX's tensor(string)): the
caller's bytes that are no UTF-8 text, or hold a NUL, are the caller's 400, never the
candidate's failure."""

from __future__ import annotations

import numpy as np

from serving.bundles.tensors import TensorError


def as_text(array: np.ndarray, what: str) -> np.ndarray:
    """BYTES values as str objects, for a model that takes text (ONNX's tensor(string)):
    onnxruntime writes a bytes object as its repr, so b"hello" would reach the model as the
    text "b'hello'". A value that is not UTF-8 is a TensorError naming `what` and the item."""
    out = np.empty(array.shape, dtype=object)
    flat = out.reshape(-1)
    for i, value in enumerate(np.asarray(array, dtype=object).reshape(-1)):
        if isinstance(value, bytes | np.bytes_):
            try:
                value = bytes(value).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise TensorError(f"{what} holds a value that is not UTF-8 text (item {i}, byte "
                                  f"{exc.start})") from None
        flat[i] = str(value)
    return out


def refuse_nul(texts: np.ndarray, what: str) -> None:
    """A TensorError naming `what` and the item where text (:func:`as_text`) holds a NUL, as
    the same text in a JSON string is refused: sent as base64 or binary data it reached the
    model, whose echo of it no store keeps, so the caller's bad text was the candidate's
    failure, counted by its error-rate guardrail."""
    for i, value in enumerate(texts.reshape(-1)):
        if "\0" in value:
            raise TensorError(f"{what} holds a NUL (\\u0000) character (item {i}), which no "
                              "text abvoc keeps holds: send the text without it")
