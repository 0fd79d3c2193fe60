"""V2 tensor values are taken only where they arrive unchanged: JSON data numpy would read as
NaN (strings, null), truncate (fractions for integers), wrap (past an integer type's range),
overflow (past a float type's) or read for its truth (strings and numbers for BOOL) is refused
with a message naming the tensor; a declared input datatype takes casts that keep the values."""

from __future__ import annotations

import numpy as np
import pytest

from serving.bundles.runner import as_datatype
from serving.bundles.tensors import TensorError, from_v2

V2_VALUES_CHANGED_BY_A_CAST = [
    # numpy reads these as NaN, or the cast makes one: the model would answer from NaN.
    ("FP32", ["nan", 1], "FP32 data must be JSON numbers within its range, not strings"),
    ("FP32", [None, 1], "FP32 data must be JSON numbers within its range, not strings"),
    ("FP32", ["5.1", 1], "FP32 data must be JSON numbers within its range, not strings"),
    ("FP32", [True, False], "FP32 data must be JSON numbers"),
    # Beside numbers numpy reads them as 1 and 0: a client's mistake answered as if sent so.
    ("FP32", [True, 3.5], "FP32 data must be JSON numbers within its range, not strings, bool"),
    ("INT32", [[1, 2], [False, 7]], "INT32 data must be JSON numbers within its range"),
    ("FP16", [70000, 1], "its values must lie within FP16's range"),
    ("FP32", [1e300, 1], "its values must lie within FP32's range"),
    # Truncated, wrapped or read for their truth: another value than the one sent.
    ("INT32", [5.9, 1], "INT32 data must be integers"),
    ("INT8", [1000, 1], r"its values must lie within INT8's range \[-128, 127\]"),
    ("UINT8", [-1, 1], r"its values must lie within UINT8's range \[0, 255\]"),
    ("INT64", [2**63, 1], "its values must lie within INT64's range"),
    ("UINT64", [2.0**60, 1], "UINT64 values past 2\\^53 must be written as JSON integers"),
    # Past 64 bits the JSON reader gives a float, however it was written: out of range, not
    # "to be written as integers" (it was).
    ("INT64", [-9223372036854775809.0, 1], r"its values must lie within INT64's range"),
    ("UINT64", [2.0**64, 1], r"its values must lie within UINT64's range"),
    ("BOOL", ["false", "true"], "BOOL data must be true or false"),
    ("BOOL", [2, 0], "BOOL data must be true or false"),
]


@pytest.mark.parametrize(("datatype", "data", "words"), V2_VALUES_CHANGED_BY_A_CAST)
def test_json_data_a_cast_would_change_is_refused(datatype: str, data: list,
                                                  words: str) -> None:
    with pytest.raises(TensorError, match=f"^tensor 'x': {words}"):
        from_v2({"name": "x", "datatype": datatype, "shape": [2], "data": data})


def test_json_data_that_casts_exactly_is_taken() -> None:
    def read(datatype: str, data: list) -> list:
        return from_v2({"name": "x", "datatype": datatype, "shape": [len(data)],
                        "data": data}).tolist()

    assert read("INT32", [5.0, -2]) == [5, -2]  # integral numbers written as floats
    assert read("UINT64", [2**64 - 1]) == [2**64 - 1]
    # numpy reads these lists as floats (one value past INT64 among small ones); they were
    # refused as out of range, or as "not written as JSON integers", though they were.
    assert read("UINT64", [2**64 - 1, 1]) == [2**64 - 1, 1]
    assert read("UINT64", [2**63, 1]) == [2**63, 1]
    assert from_v2({"name": "x", "datatype": "UINT64", "shape": [2, 2],
                    "data": [[2**63, 1], [2, 3]]}).tolist() == [[2**63, 1], [2, 3]]
    assert read("FP64", [1e300, 1]) == [1e300, 1.0]
    assert read("FP32", [1, 2.5]) == [1.0, 2.5]
    assert read("BOOL", [True, False]) == [True, False]
    assert read("FP32", []) == []


def test_a_shape_of_more_dimensions_than_numpy_takes_is_a_400() -> None:
    with pytest.raises(TensorError, match="its shape has 65 dimensions; at most 32"):
        from_v2({"name": "x", "datatype": "FP32", "shape": [1] * 65, "data": [1.0]})
    with pytest.raises(TensorError, match="its shape has 65 dimensions; at most 32"):
        from_v2({"name": "x", "datatype": "BYTES", "shape": [1] * 65, "data": ["a"]})


def test_a_declared_datatype_takes_only_casts_that_keep_the_values() -> None:
    assert as_datatype(np.array([300], np.int64), "INT16", "input 'x'").dtype == np.int16
    assert as_datatype(np.array([3], np.uint64), "INT8", "input 'x'").tolist() == [3]
    assert as_datatype(np.array([1.5]), "FP32", "input 'x'").dtype == np.float32
    for array, datatype, words in (
            (np.array([300], np.int64), "INT8", r"its values must lie within INT8's range"),
            (np.array([-1], np.int64), "UINT32", r"its values must lie within UINT32's range"),
            (np.array([1e300]), "FP32", r"its values must lie within FP32's range"),
            (np.array([1.5]), "INT32", r"must be INT32, got FP64"),
            (np.array(["a"], object), "FP32", r"must be FP32, got BYTES"),
            (np.array([1.0]), "BYTES", r"must be BYTES, got FP64"),
            # Integers a float type of their size rounds: the model would get another value.
            (np.array([5, 16777217], np.int64), "FP32",
             r"FP32 cannot hold the integer 16777217 exactly \(integers up to 2\^24"),
            (np.array([2147483647], np.int32), "FP32", r"FP32 cannot hold the integer"),
            (np.array([-(2**53) - 1], np.int64), "FP64", r"FP64 cannot hold the integer"),
            (np.array([4097], np.int16), "FP16", r"FP16 cannot hold the integer 4097")):
        with pytest.raises(TensorError, match=f"^input 'x'(:)? {words}"):
            as_datatype(array, datatype, "input 'x'")
    # Integers a float type holds exactly pass, however large.
    assert as_datatype(np.array([16777216, -2**30], np.int64), "FP32",
                       "input 'x'").tolist() == [16777216.0, -2.0**30]
    assert as_datatype(np.array([2**53], np.int64), "FP64", "input 'x'").tolist() == [2.0**53]
    # NaN a client sent as binary data stays (a tabular model may read it as missing).
    assert np.isnan(as_datatype(np.array([np.nan]), "FP32", "input 'x'")).all()
