"""Numpy arrays and Open Inference Protocol V2 JSON tensors, both ways.

A V2 tensor is ``{"name", "datatype", "shape", "data"}`` with the data flattened in row-major
order. BYTES travel as base64 strings marked ``parameters.content_type = "base64"``, so any byte
string survives JSON; a BYTES tensor without that mark is read as UTF-8 text.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from core.errors import AbvocError

V2_TO_NUMPY: dict[str, np.dtype] = {
    "BOOL": np.dtype(bool), "UINT8": np.dtype(np.uint8), "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32), "UINT64": np.dtype(np.uint64), "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16), "INT32": np.dtype(np.int32), "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16), "FP32": np.dtype(np.float32), "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
NUMPY_TO_V2 = {dtype: name for name, dtype in V2_TO_NUMPY.items()}
BASE64 = "base64"


class TensorError(AbvocError):
    """A tensor is malformed: the message names it and says what is wrong."""

    status = 400


def v2_datatype(array: np.ndarray) -> str:
    """The V2 datatype of an array; strings and bytes (any numpy kind) are BYTES."""
    if array.dtype.kind in "OSU":
        return "BYTES"
    try:
        return NUMPY_TO_V2[array.dtype]
    except KeyError:
        raise TensorError(f"numpy dtype {array.dtype} has no V2 datatype") from None


def to_v2(name: str, array: np.ndarray) -> dict[str, Any]:
    """One array as a V2 JSON tensor."""
    array = np.asarray(array)
    datatype = v2_datatype(array)
    tensor: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
    if datatype == "BYTES":
        tensor["data"] = [base64.b64encode(_as_bytes(v)).decode("ascii") for v in array.flat]
        tensor["parameters"] = {"content_type": BASE64}
    elif datatype == "FP16":
        tensor["data"] = array.astype(np.float32).ravel().tolist()
    else:
        tensor["data"] = array.ravel().tolist()
    return tensor


def from_v2(tensor: Mapping[str, Any]) -> np.ndarray:
    """A V2 JSON tensor as an array of its datatype and shape, or a TensorError naming it."""
    name = tensor.get("name", "?")
    datatype, shape, data = tensor.get("datatype"), tensor.get("shape"), tensor.get("data")
    if datatype not in V2_TO_NUMPY:
        raise TensorError(f"tensor {name!r}: datatype {datatype!r} is not a V2 datatype")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise TensorError(f"tensor {name!r}: shape must be a list of sizes, got {shape!r}")
    flat = _flatten(data)
    size = math.prod(shape)  # exact (numpy's int64 product wraps), and 20× quicker for a short list
    if len(flat) != size:
        raise TensorError(f"tensor {name!r}: shape {shape} holds {size} values, data has "
                          f"{len(flat)}")
    if datatype == "BYTES":
        encoded = (tensor.get("parameters") or {}).get("content_type") == BASE64
        values = [_bytes_value(name, v, encoded) for v in flat]
        out = np.empty(size, dtype=object)
        out[:] = values
        return out.reshape(shape)
    try:
        return np.asarray(flat, dtype=V2_TO_NUMPY[datatype]).reshape(shape)
    except (TypeError, ValueError, OverflowError) as exc:
        raise TensorError(f"tensor {name!r}: data is not {datatype}: {exc}") from exc


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data] if data is not None else []
    if any(isinstance(v, list) for v in data):  # V2 allows nested row-major lists too
        return [x for v in data for x in _flatten(v)]
    return data


def _bytes_value(name: str, value: Any, encoded: bool) -> bytes:
    if not isinstance(value, str):
        raise TensorError(f"tensor {name!r}: BYTES data must be strings")
    if not encoded:
        return value.encode("utf-8")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise TensorError(f"tensor {name!r}: data marked base64 is not base64: {exc}") from exc


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TensorError(f"BYTES values must be bytes or str, got {type(value).__name__}")
