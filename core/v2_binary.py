"""V2 (Open Inference Protocol) datatypes and their bytes: the layout of the binary tensor data
extension (numbers little-endian, row-major; each BYTES value after its length as a 4-byte
little-endian integer), and the form kept inputs of tensors are stored in.

It sits in core because both sides use it: serving reads requests and writes answers in this
layout and keeps inputs in it; feedback, evaluation and the dashboards read kept inputs back as
V2 JSON tensors. A kept input in the ``KEPT`` form is a 4-byte header length, a JSON list of
tensor headers (name, datatype, shape, ``parameters.binary_data_size``), then the raw data: an
image-sized FP32 tensor is 0.6 MB and written in a copy, where its V2 JSON was 3.3 MB and took
3 ms to write.
"""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import numpy as np
import orjson

V2_TO_NUMPY: dict[str, np.dtype] = {
    "BOOL": np.dtype(bool), "UINT8": np.dtype(np.uint8), "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32), "UINT64": np.dtype(np.uint64), "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16), "INT32": np.dtype(np.int32), "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16), "FP32": np.dtype(np.float32), "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
NUMPY_TO_V2 = {dtype: name for name, dtype in V2_TO_NUMPY.items()}
SIZE = "binary_data_size"
# A request parameter of the extension: every output as binary data.
BINARY_OUTPUT = "binary_data_output"
BASE64 = "base64"
# The content type of BYTES data sent as plain UTF-8 strings (as Seldon MLServer names it).
TEXT = "str"
# PredictionInput.kind of tensors kept in this layout; "tensors" rows hold V2 JSON.
KEPT = "v2-binary"
LEGACY_JSON = "tensors"
_LENGTH = struct.Struct("<I")


def pack_bytes(values: list[bytes]) -> bytes:
    return b"".join(_LENGTH.pack(len(v)) + v for v in values)


def unpack_bytes(chunk: memoryview | bytes) -> list[bytes]:
    """BYTES values from their layout; ValueError says where it breaks."""
    values, at, end = [], 0, len(chunk)
    while at < end:
        if at + 4 > end:
            raise ValueError("BYTES data ends inside a value's 4-byte length")
        (length,) = _LENGTH.unpack_from(chunk, at)
        at += 4
        if at + length > end:
            raise ValueError(f"a BYTES value says {length} bytes, only {end - at} are left")
        values.append(bytes(chunk[at:at + length]))
        at += length
    return values


def raw_numbers(array: np.ndarray) -> bytes:
    """A numeric array's bytes: little-endian, row-major."""
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def numbers(datatype: str, shape: list[int], chunk: memoryview | bytes) -> np.ndarray:
    """A numeric tensor from its bytes (sizes already checked), as a writable array."""
    dtype = V2_TO_NUMPY[datatype]
    return np.frombuffer(chunk, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(shape)


def pack_kept(tensors: list[tuple[dict[str, Any], bytes]]) -> bytes:
    """Tensor headers (each with its ``parameters.binary_data_size``) and their bytes, in the
    ``KEPT`` form."""
    head = orjson.dumps([h for h, _ in tensors])
    return b"".join([_LENGTH.pack(len(head)), head, *(raw for _, raw in tensors)])


def kept_tensors(kind: str, data: bytes) -> list[dict[str, Any]]:
    """A kept input of tensors as V2 JSON tensors (BYTES as base64, marked so), whichever form
    it was kept in."""
    if kind == LEGACY_JSON:
        return json.loads(data)
    (length,) = _LENGTH.unpack_from(data, 0)
    at = 4 + length
    out = []
    for header in json.loads(data[4:at]):
        size = header["parameters"][SIZE]
        chunk = memoryview(data)[at:at + size]
        at += size
        tensor: dict[str, Any] = {"name": header["name"], "datatype": header["datatype"],
                                  "shape": header["shape"]}
        if header["datatype"] == "BYTES":
            tensor["data"] = [base64.b64encode(v).decode("ascii") for v in unpack_bytes(chunk)]
            tensor["parameters"] = {"content_type": BASE64}
        else:
            tensor["data"] = numbers(header["datatype"], [-1], chunk).tolist()
        out.append(tensor)
    return out
