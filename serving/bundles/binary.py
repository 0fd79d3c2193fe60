"""The binary tensor data extension of the V2 REST protocol, as Triton and its Python client speak
it: a request or answer body is a JSON header of `Inference-Header-Content-Length` bytes, then
the raw data of each tensor whose ``parameters.binary_data_size`` says how many bytes it takes, in
the header's order. Numbers are little-endian in row-major order; a BYTES tensor is each value's
length as a 4-byte little-endian integer, then the value.

Tensors read this way skip JSON's text entirely: a 1x3x224x224 FP32 image is 600 kB of bytes
that numpy reads in place, against 3.3 MB of JSON numbers to parse.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from core.v2_binary import (
    SIZE,
    V2_TO_NUMPY,
    numbers,
    pack_bytes,
    pack_kept,
    raw_numbers,
    unpack_bytes,
)
from serving.bundles.tensors import (
    TensorError,
    as_bytes,
    bytes_array,
    check_size,
    from_v2,
    signature,
    v2_datatype,
)

HEADER = "Inference-Header-Content-Length"


def split(body: bytes, header_length: str) -> tuple[bytes, memoryview]:
    """The JSON header and the binary part of a body sent with the `HEADER` header."""
    try:
        length = int(header_length)
    except ValueError:
        length = -1
    if not 0 < length <= len(body):
        raise TensorError(f"the {HEADER} header must be the length of the JSON header in bytes, "
                          f"between 1 and the body's {len(body)}; got {header_length[:40]!r}")
    return body[:length], memoryview(body)[length:]


class Chunks:
    """The binary part of a request, handed out tensor by tensor in the header's order."""

    def __init__(self, data: memoryview) -> None:
        self.data, self.at = data, 0

    def take(self, name: str, size: Any) -> memoryview:
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise TensorError(f"tensor {name!r}: parameters.{SIZE} must be a byte count, got "
                              f"{size!r}")
        if self.at + size > len(self.data):
            raise TensorError(f"tensor {name!r}: parameters.{SIZE} is {size} bytes but only "
                              f"{len(self.data) - self.at} are left in the body")
        chunk = self.data[self.at:self.at + size]
        self.at += size
        return chunk

    def finish(self) -> None:
        if self.at != len(self.data):
            raise TensorError(f"the body holds {len(self.data) - self.at} bytes after the "
                              f"tensors that name their {SIZE}; send only those")


def read_tensor(tensor: Mapping[str, Any], chunks: Chunks | None,
                finite: bool = True) -> np.ndarray:
    """A V2 tensor from its JSON `data`, or from the binary part when it names its size;
    `finite` as :func:`from_v2` has it, for binary data too: a request's NaN or Infinity is the
    caller's 400 however it came (let through, a remote's NaN scores were counted against the
    candidate, and a local bundle served a label picked from NaN probabilities)."""
    size = (tensor.get("parameters") or {}).get(SIZE)
    if size is None:
        return from_v2(tensor, finite=finite)
    name = tensor.get("name", "?")
    if chunks is None:
        raise TensorError(f"tensor {name!r} gives its {SIZE} but the body has no {HEADER} "
                          "header to say where the binary data starts")
    array = from_binary(tensor, chunks.take(name, size))
    if finite and array.dtype.kind == "f" and not np.isfinite(array).all():
        raise TensorError(f"tensor {name!r} holds a number that is not finite (NaN or Infinity)")
    return array


def from_binary(tensor: Mapping[str, Any], chunk: memoryview) -> np.ndarray:
    """A tensor whose data came in the binary part, as an array of its datatype and shape."""
    name, datatype, shape, size = signature(tensor)
    if tensor.get("data") is not None:
        raise TensorError(f"tensor {name!r}: give its values either in 'data' or as binary "
                          f"data ({SIZE}), not both")
    if datatype == "BYTES":
        try:
            values = unpack_bytes(chunk)
        except ValueError as exc:
            raise TensorError(f"tensor {name!r}: {exc}") from None
        check_size(name, shape, size, len(values))
        return bytes_array(values, shape)
    itemsize = V2_TO_NUMPY[datatype].itemsize
    if len(chunk) != size * itemsize:
        raise TensorError(f"tensor {name!r}: shape {shape} of {datatype} takes "
                          f"{size * itemsize} bytes, the binary data has {len(chunk)}")
    if datatype == "BOOL" and np.frombuffer(chunk, np.uint8).max(initial=0) > 1:
        raise TensorError(f"tensor {name!r}: BOOL values must be the bytes 0 or 1")
    return numbers(datatype, shape, chunk)


def to_binary(name: str, array: np.ndarray) -> tuple[dict[str, Any], bytes]:
    """One array as a V2 tensor header and its binary data."""
    array = np.asarray(array)
    datatype = v2_datatype(array)
    raw = pack_bytes([as_bytes(v) for v in array.flat]) if datatype == "BYTES" \
        else raw_numbers(array)
    return {"name": name, "datatype": datatype, "shape": list(array.shape),
            "parameters": {SIZE: len(raw)}}, raw


def kept(arrays: Mapping[str, np.ndarray]) -> bytes:
    """Checked input tensors in the form kept inputs are stored in (`core.v2_binary.KEPT`)."""
    return pack_kept([to_binary(n, a) for n, a in sorted(arrays.items())])
