"""The binary tensor data extension, both ways, checked byte for byte against the layout Triton's
client writes (little-endian, row-major; BYTES as 4-byte lengths then values), and every
malformed body refused with a TensorError that names the tensor."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from serving.bundles.binary import Chunks, from_binary, split, to_binary
from serving.bundles.tensors import V2_TO_NUMPY, TensorError

NUMERIC = [name for name in V2_TO_NUMPY if name not in ("BYTES", "BOOL")]


def _read(tensor: dict, raw: bytes) -> np.ndarray:
    return from_binary(tensor, memoryview(raw))


@pytest.mark.parametrize("datatype", NUMERIC)
def test_numbers_go_both_ways_as_little_endian_row_major_bytes(datatype: str) -> None:
    dtype = V2_TO_NUMPY[datatype]
    array = (np.arange(24).reshape(2, 3, 4) % 7).astype(dtype)
    header, raw = to_binary("x", array)
    assert header == {"name": "x", "datatype": datatype, "shape": [2, 3, 4],
                      "parameters": {"binary_data_size": 24 * dtype.itemsize}}
    assert raw == array.astype(dtype.newbyteorder("<")).tobytes(order="C")
    back = _read(header, raw)
    assert back.dtype == dtype and back.shape == (2, 3, 4) and back.flags.writeable
    np.testing.assert_array_equal(back, array)
    # A Fortran-ordered array is written row-major all the same.
    assert to_binary("x", np.asfortranarray(array))[1] == raw


def test_bytes_are_length_prefixed_values() -> None:
    array = np.array([[b"ab", b""], ["caf\u00e9", b"\x00\xff"]], dtype=object)
    header, raw = to_binary("t", array)
    assert header["datatype"] == "BYTES" and header["shape"] == [2, 2]
    assert raw == (struct.pack("<I", 2) + b"ab" + struct.pack("<I", 0)
                   + struct.pack("<I", 5) + "caf\u00e9".encode() + struct.pack("<I", 2)
                   + b"\x00\xff")
    back = _read(header, raw)
    assert back.tolist() == [[b"ab", b""], ["caf\u00e9".encode(), b"\x00\xff"]]


def test_bools_are_single_bytes_of_zero_or_one() -> None:
    header, raw = to_binary("b", np.array([True, False, True]))
    assert raw == b"\x01\x00\x01"
    assert _read(header, raw).tolist() == [True, False, True]
    with pytest.raises(TensorError, match="'b': BOOL values must be the bytes 0 or 1"):
        _read(header, b"\x01\x02\x01")


def test_split_and_chunks_hand_out_the_binary_part_in_order() -> None:
    head, rest = split(b'{"a":1}' + b"\x01\x02\x03", "7")
    assert head == b'{"a":1}' and bytes(rest) == b"\x01\x02\x03"
    chunks = Chunks(rest)
    assert bytes(chunks.take("a", 1)) == b"\x01" and bytes(chunks.take("b", 2)) == b"\x02\x03"
    chunks.finish()


@pytest.mark.parametrize(("call", "words"), [
    (lambda: split(b"{}", "x"), "header must be the length of the JSON header"),
    (lambda: split(b"{}", "0"), "between 1 and the body's 2"),
    (lambda: split(b"{}", "3"), "got '3'"),
    (lambda: Chunks(memoryview(b"ab")).take("a", 3), "'a': parameters.binary_data_size is 3 "
                                                     "bytes but only 2 are left"),
    (lambda: Chunks(memoryview(b"ab")).take("a", -1), "must be a byte count"),
    (lambda: Chunks(memoryview(b"ab")).take("a", True), "must be a byte count"),
    (lambda: Chunks(memoryview(b"ab")).finish(), "holds 2 bytes after the tensors"),
    (lambda: _read({"name": "f", "datatype": "FP32", "shape": [2]}, b"\x00" * 7),
     "'f': shape [2] of FP32 takes 8 bytes, the binary data has 7"),
    (lambda: _read({"name": "f", "datatype": "FP32", "shape": [1], "data": [1.0]},
                   b"\x00" * 4), "either in 'data' or as binary data"),
    (lambda: _read({"name": "f", "datatype": "BF16", "shape": [1]}, b"\x00" * 2),
     "datatype 'BF16' is not one abvoc takes"),
    (lambda: _read({"name": "s", "datatype": "BYTES", "shape": [1]}, b"\x05\x00\x00\x00ab"),
     "'s': a BYTES value says 5 bytes, only 2 are left"),
    (lambda: _read({"name": "s", "datatype": "BYTES", "shape": [1]}, b"\x01\x00"),
     "ends inside a value's 4-byte length"),
    (lambda: _read({"name": "s", "datatype": "BYTES", "shape": [2]}, b"\x00\x00\x00\x00"),
     "shape [2] holds 2 values, data has 1"),
])
def test_malformed_binary_data_is_refused_naming_the_tensor(call, words: str) -> None:  # noqa: ANN001
    with pytest.raises(TensorError, match=words.replace("[", r"\[").replace("]", r"\]")):
        call()
