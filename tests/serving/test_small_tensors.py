"""The small-tensor path of `json_values` (flat lists of JSON floats or integers, checked in a few C
calls) reads and refuses exactly as the general path does."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serving.bundles import tensors
from serving.bundles.tensors import TensorError, json_values

NUMERIC = ["FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16",
           "UINT32", "UINT64"]
VALUES = st.lists(st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1e6, max_value=1e6),
    st.integers(min_value=-2**64, max_value=2**64),
    st.integers(min_value=-300, max_value=300),
    st.sampled_from([0.0, 1.0, -0.0, 65504.0, 65520.0, 3.4028235e38, 3.5e38, 16777217, 2**53 + 1]),
), min_size=0, max_size=12)


def _read(values: list, datatype: str, finite: bool) -> np.ndarray | str:
    try:
        return json_values(values, datatype, "t", finite)
    except TensorError as exc:
        return exc.message


def _general(values: list, datatype: str, finite: bool, monkeypatch: pytest.MonkeyPatch
             ) -> np.ndarray | str:
    with monkeypatch.context() as patch:
        patch.setattr(tensors, "_SMALL", -1)  # every list goes the general way
        return _read(values, datatype, finite)


def _same(a: np.ndarray | str, b: np.ndarray | str) -> None:
    assert type(a) is type(b), (a, b)
    if isinstance(a, str):
        assert a == b
    else:
        assert a.dtype == b.dtype and a.shape == b.shape
        assert np.array_equal(a, b, equal_nan=True)


@settings(max_examples=400, deadline=None)
@given(values=VALUES, datatype=st.sampled_from(NUMERIC), finite=st.booleans())
def test_small_lists_read_as_the_general_path_reads_them(values: list, datatype: str,
                                                         finite: bool) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        _same(_read(values, datatype, finite), _general(values, datatype, finite, monkeypatch))


def test_the_small_path_takes_the_common_tensors(monkeypatch: pytest.MonkeyPatch) -> None:
    taken = []
    plain = tensors._plain_numbers
    monkeypatch.setattr(tensors, "_plain_numbers",
                        lambda *a: taken.append(a) or plain(*a))
    read = json_values([5.1, 3.5, 1.4, 0.2], "FP32", "t")
    assert read.dtype == np.float32 and read.tolist() == pytest.approx([5.1, 3.5, 1.4, 0.2])
    assert json_values([1, 2, 3], "INT64", "t").tolist() == [1, 2, 3]
    assert len(taken) == 2


@pytest.mark.parametrize(("values", "datatype", "words"), [
    ([1.0, math.nan], "FP32", "not finite"),
    ([3.5e38], "FP32", "FP32's range"),
    ([True, 1.0], "FP32", "not strings, booleans or null"),
    ([2**31], "INT32", "INT32's range"),
    ([16777217], "FP32", "exactly"),
])
def test_what_the_small_path_leaves_is_refused_as_before(values: list, datatype: str,
                                                         words: str) -> None:
    with pytest.raises(TensorError, match=words):
        json_values(values, datatype, "t")
