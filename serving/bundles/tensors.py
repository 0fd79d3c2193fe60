"""Numpy arrays and Open Inference Protocol V2 JSON tensors, both ways.

A V2 tensor is ``{"name", "datatype", "shape", "data"}`` with the data flattened in row-major
order. BYTES travel as base64 strings marked ``parameters.content_type = "base64"``, so any byte
string survives JSON, or, where the reader asks for text, as plain strings marked "str"; a BYTES
tensor without the base64 mark is read as UTF-8 text.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson

from core.errors import AbvocError
from core.text import quoted_names, sent
from core.v2_binary import BASE64, NUMPY_TO_V2, TEXT, V2_TO_NUMPY

MAX_DIMENSIONS = 32
"""The most dimensions a tensor's shape may have (numpy's own limit is 64; no model input has
nearly as many)."""
MAX_V2_BODY_BYTES = 32 << 20
"""The largest /v2 request body (app.api.v2 holds requests to it)."""
MAX_VALUES = MAX_V2_BODY_BYTES // 2
"""The most values a request's tensor may hold: no body of MAX_V2_BODY_BYTES holds more (in
JSON each value takes two characters at least), so /v2 refuses more and a manifest may not
declare an input that needs more."""


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


def to_v2(name: str, array: np.ndarray, *, arrays: bool = False,
          text: bool = False) -> dict[str, Any]:
    """One array as a V2 JSON tensor. With `arrays`, numeric data stays a flat numpy array, for
    :func:`v2_json` to write (no Python float per value). With `text`, BYTES values that are all
    UTF-8 go as plain strings marked ``content_type = "str"`` (else as base64, marked so)."""
    array = np.asarray(array)
    datatype = v2_datatype(array)
    tensor: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
    if datatype == "BYTES":
        values = [as_bytes(v) for v in array.flat]
        if text:
            try:
                tensor["data"] = [v.decode("utf-8") for v in values]
                tensor["parameters"] = {"content_type": TEXT}
                return tensor
            except UnicodeDecodeError:
                pass
        tensor["data"] = [base64.b64encode(v).decode("ascii") for v in values]
        tensor["parameters"] = {"content_type": BASE64}
        return tensor
    flat = np.ascontiguousarray(array.astype(np.float32) if datatype == "FP16" else array)
    tensor["data"] = flat.reshape(-1) if arrays else flat.ravel().tolist()
    return tensor


def v2_json(value: list[dict[str, Any]] | dict[str, Any]) -> bytes:
    """V2 tensors from ``to_v2(..., arrays=True)`` (a list of them, or a request body with its
    ``inputs``) as compact JSON. orjson writes the arrays straight from memory: a 150,528-value
    FP32 tensor took 60 ms through ``tolist`` and the standard library. orjson would write NaN
    and infinities as null, so tensors holding one go to the standard library, which writes
    them as NaN and Infinity tokens (JSON has none: some V2 servers read them, MLServer refuses
    them, so the remote client sends no such tensor: serving.remote.RemoteClient.infer)."""
    tensors = value.get("inputs", []) if isinstance(value, dict) else value
    if all(_finite(t.get("data")) for t in tensors):
        return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)
    return json.dumps(value, default=_as_list, separators=(",", ":")).encode()


def finite_for_json(tensors: list[dict[str, Any]]) -> None:
    """A TensorError naming the first of ``to_v2(..., arrays=True)``'s tensors that holds NaN
    or Infinity: JSON has no such numbers; written as tokens, MLServer refused the body and
    KServe answered NaN. A request's inputs never hold them (`serving.bundles.binary.read_tensor`
    refuses them at the door); this guards the client's other callers."""
    for tensor in tensors:
        if not _finite(tensor.get("data")):
            raise TensorError(f"input {tensor['name']!r} holds NaN or Infinity, which this "
                              "candidate's server cannot be sent: it takes V2 JSON, which has "
                              "no such numbers (a [remote] with binary_data = true can)")


def _finite(data: Any) -> bool:
    return not isinstance(data, np.ndarray) or data.dtype.kind != "f" \
        or bool(np.isfinite(data).all())


def _as_list(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def from_v2(tensor: Mapping[str, Any], *, finite: bool = True) -> np.ndarray:
    """A V2 JSON tensor as an array of its datatype and shape, or a TensorError naming it.
    `finite`: NaN and infinities are refused (a request's inputs; a model's answer may hold
    them)."""
    name, datatype, shape, size = signature(tensor)
    data = tensor.get("data")
    if datatype == "BYTES":
        flat = _flatten(data, name)
        check_size(name, shape, size, len(flat))
        encoded = (tensor.get("parameters") or {}).get("content_type") == BASE64
        return bytes_array([_bytes_value(name, v, encoded) for v in flat], shape)
    array = json_values(data if isinstance(data, list) else [] if data is None else [data],
                        datatype, f"tensor {name!r}", finite)
    check_size(name, shape, size, array.size)
    return array.reshape(shape)


def json_values(values: Any, datatype: str, where: str, finite: bool = True) -> np.ndarray:
    """JSON data as an array of `datatype`, refusing what a cast would change: strings and null
    (numpy reads "nan" and null as NaN), booleans for numbers and numbers for BOOL, fractions
    for integers, values past the datatype's range. numpy reads the list once, in C, in the
    type the JSON values have (flat and nested row-major lists alike); the checks are on that
    array. `where` names the tensor in messages."""
    if type(values) is list and len(values) <= _SMALL:
        small = _plain_numbers(values, datatype, finite)
        if small is not None:
            return small
    try:
        array = np.asarray(values)
    except ValueError:
        raise TensorError(f"{where}: its nested data is ragged; every row must hold the same "
                          "number of values") from None
    kind = array.dtype.kind
    if array.size == 0:
        return array.astype(V2_TO_NUMPY[datatype])
    if datatype == "BOOL":
        if kind != "b":
            raise TensorError(f"{where}: BOOL data must be true or false")
        return array
    if kind not in "iuf" or _holds_booleans(values, array):
        raise TensorError(f"{where}: {datatype} data must be JSON numbers within its range, "
                          "not strings, booleans or null")
    if finite and kind == "f" and not np.isfinite(array).all():  # a lenient parser's NaN
        raise TensorError(f"{where} holds a number that is not finite (NaN or Infinity)")
    if kind == "f" and datatype[0] in "IU":  # numbers written with a point, or mixed
        if not np.all(np.trunc(array) == array):
            raise TensorError(f"{where}: {datatype} data must be integers")
        info = np.iinfo(V2_TO_NUMPY[datatype])
        if np.abs(array).max() > 2**53:  # read as floats, no longer exact
            return _exact_integers(values, array.shape, datatype, where)
        if array.min() < info.min or array.max() > info.max:
            raise TensorError(f"{where}: its values must lie within {datatype}'s range "
                              f"[{info.min}, {info.max}]")
        array = array.astype(np.int64)
    return fit(array, datatype, where)


_SMALL = 256
# Per numeric datatype: (its numpy type, the largest size it holds, the smallest integer).
_LIMITS = {name: (dtype, float(np.finfo(dtype).max), 0) if dtype.kind == "f"
           else (dtype, int(np.iinfo(dtype).max), int(np.iinfo(dtype).min))
           for name, dtype in ((n, np.dtype(t)) for n, t in V2_TO_NUMPY.items())
           if dtype.kind in "fiu"}


def _plain_numbers(values: list, datatype: str, finite: bool) -> np.ndarray | None:
    """The common small tensor, a flat list of JSON floats for a float datatype (finite, within
    its range) or of integers for an integer one (within its range), read with a few checks in
    C instead of numpy's several reductions (a 4-value tensor: 12 µs down to a few); None for
    anything else, which `json_values` reads and checks in full."""
    limits = _LIMITS.get(datatype)
    if limits is None or not values:
        return None
    dtype, largest, smallest = limits
    kinds = set(map(type, values))
    if dtype.kind == "f" and kinds == {float}:
        if (finite or dtype.itemsize < 8) and not all(map(math.isfinite, values)):
            return None
        if dtype.itemsize < 8 and max(map(abs, values)) > largest:
            return None
    elif not (dtype.kind in "iu" and kinds == {int}
              and smallest <= min(values) and max(values) <= largest):
        return None
    return np.array(values, dtype=dtype)


def _holds_booleans(values: Any, array: np.ndarray) -> bool:
    """Whether JSON booleans hide among numbers (numpy reads true as 1 and false as 0 beside
    them): looked for, item by item, only where the array holds a 0 or a 1."""
    if not isinstance(values, list) or not ((array == 0) | (array == 1)).any():
        return False
    lists = [values]
    while lists:
        items = lists.pop()
        types = set(map(type, items))
        if bool in types:
            return True
        if list in types:
            lists.extend(item for item in items if isinstance(item, list))
    return False


def _exact_integers(values: Any, shape: tuple[int, ...], datatype: str,
                    where: str) -> np.ndarray:
    """Integers past 2^53 that numpy read as floats (one past INT64's range among others
    turns the whole list to floats), taken again from the JSON values themselves (an object
    array keeps Python's ints): exact, and in range when they are. The rare path."""
    exact = np.array(values, dtype=object).reshape(shape)
    info = np.iinfo(V2_TO_NUMPY[datatype])
    if not all(type(v) is int for v in exact.flat):
        # An integer past 64 bits reaches here as a float (the JSON reader's): out of range,
        # however it was written (one just past INT64's least rounds to it: taken as past).
        low = info.min + (info.min < 0)  # -2^63 as a float may be an integer past it
        if any(isinstance(v, float) and not low <= v <= info.max for v in exact.flat):
            raise TensorError(f"{where}: its values must lie within {datatype}'s range "
                              f"[{info.min}, {info.max}]")
        raise TensorError(f"{where}: {datatype} values past 2^53 must be written as JSON "
                          "integers (no decimal point)")
    if exact.min() < info.min or exact.max() > info.max:
        raise TensorError(f"{where}: its values must lie within {datatype}'s range "
                          f"[{info.min}, {info.max}]")
    return exact.astype(V2_TO_NUMPY[datatype])


def fit(array: np.ndarray, datatype: str, what: str) -> np.ndarray:
    """A numeric `array` in `datatype` where the cast keeps its values: within a kind (INT64 data
    for an INT32 input, FP64 for FP32) or widening (integers or booleans to floats), never past
    the datatype's range (an integer that would wrap, a float that would overflow to infinity);
    else a TensorError saying what `what` must be."""
    want = V2_TO_NUMPY[datatype]
    if array.dtype == want:
        return array
    integers = array.dtype.kind in "iu" and want.kind in "iu"  # signed or not: by range
    if array.dtype.kind in "OSU" or not (
            integers or np.can_cast(array.dtype, want, casting="same_kind")):
        raise TensorError(f"{what} must be {datatype}, got {v2_name(array.dtype)}")
    if integers and array.size:
        info = np.iinfo(want)
        if array.min() < info.min or array.max() > info.max:
            raise TensorError(f"{what}: its values must lie within {datatype}'s range "
                              f"[{info.min}, {info.max}]")
    if want.kind != "f" or array.dtype.itemsize < want.itemsize:
        return array.astype(want)  # integers within range, or a float type that holds them
    with np.errstate(over="ignore"):  # an overflow is refused below
        out = array.astype(want)
    # The mask only where something is not finite: one reduction on the common path.
    if not np.isfinite(out).all() and (~np.isfinite(out) & np.isfinite(array)).any():
        limit = float(np.finfo(want).max)
        raise TensorError(f"{what}: its values must lie within {datatype}'s range "
                          f"(at most {limit:.6g} in size)")
    if array.dtype.kind in "iu" and array.size:
        _exact(array, out, datatype, what)
    return out


def _exact(integers: np.ndarray, floats: np.ndarray, datatype: str, what: str) -> None:
    """Integers cast to a float type of their own size keep their values only up to its
    mantissa (2^24 for FP32, 2^53 for FP64): 16777217 would reach the model as 16777216."""
    exact = 2 ** (np.finfo(floats.dtype).nmant + 1)
    if exact >= np.iinfo(integers.dtype).max:
        return
    big = (integers > exact) | (integers < -exact)
    if not big.any():
        return
    for given, held in zip(integers[big].tolist(), floats[big].tolist(), strict=True):
        if not math.isfinite(held) or int(held) != given:
            raise TensorError(f"{what}: {datatype} cannot hold the integer {given} exactly "
                              f"(integers up to 2^{int(math.log2(exact))} are exact); send "
                              "values it holds, or the datatype the input declares")


def v2_name(dtype: np.dtype) -> str:
    """The V2 datatype a numpy dtype holds, for messages (numpy's own name where none)."""
    return "BYTES" if dtype.kind in "OSU" else NUMPY_TO_V2.get(dtype, str(dtype))


def signature(tensor: Mapping[str, Any]) -> tuple[str, str, list[int], int]:
    """A tensor's name, datatype, shape and number of values, or a TensorError naming it."""
    name = tensor.get("name", "?")
    datatype, shape = tensor.get("datatype"), tensor.get("shape")
    if datatype not in V2_TO_NUMPY:
        raise TensorError(f"tensor {name!r}: datatype {sent(datatype)} is not one abvoc takes; use "
                          f"one of {quoted_names(sorted(V2_TO_NUMPY))}")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool)
                                              and d >= 0 for d in shape):
        huge = _past_64_bits(shape)
        if huge is not None:
            raise TensorError(f"tensor {name!r}: shape dimension {huge} is too large (an integer "
                              "past 2^64 in size); send the tensor's own shape")
        raise TensorError(f"tensor {name!r}: shape must be a list of sizes, got {sent(shape)}")
    if len(shape) > MAX_DIMENSIONS:
        raise TensorError(f"tensor {name!r}: its shape has {len(shape)} dimensions; at most "
                          f"{MAX_DIMENSIONS} are taken")
    # math.prod is exact (numpy's int64 product wraps), and 20× quicker for a short list.
    return name, datatype, shape, math.prod(shape)


def _past_64_bits(shape: Any) -> int | None:
    """The index of a dimension that is an integer past 64 bits, None where none is. orjson
    reads such an integer as a float, whose repr (1.1805916207174113e+21 for 2^70) is not what
    the caller sent, so the message says it is too large instead of quoting it."""
    if not isinstance(shape, list):
        return None
    return next((i for i, d in enumerate(shape) if isinstance(d, float) and d.is_integer()
                 and abs(d) >= 2.0 ** 64), None)


def bytes_array(values: list[bytes], shape: list[int]) -> np.ndarray:
    """BYTES values as an object array of `shape` (numpy would make a fixed-width bytes array of
    a plain list, cutting trailing NULs)."""
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out.reshape(shape)


def check_size(name: str, shape: list[int], size: int, values: int) -> None:
    if values != size:
        raise TensorError(f"tensor {name!r}: shape {shape} holds {size} values, data has "
                          f"{values}")


def _flatten(data: Any, name: str) -> list[Any]:
    """The values of BYTES data, flat or in nested row-major lists (V2 allows both), walked
    without recursion: a remote's answer 900 lists deep was a RecursionError, a 500. A tensor
    has at most MAX_DIMENSIONS dimensions, so data nested deeper is malformed."""
    if not isinstance(data, list):
        return [data] if data is not None else []
    if not any(isinstance(v, list) for v in data):
        return data
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for value in stack[-1]:
            if isinstance(value, list):
                if len(stack) >= MAX_DIMENSIONS:
                    raise TensorError(f"tensor {name!r}: its data nests more than "
                                      f"{MAX_DIMENSIONS} lists deep")
                stack.append(iter(value))
                break
            flat.append(value)
        else:
            stack.pop()
    return flat


def _bytes_value(name: str, value: Any, encoded: bool) -> bytes:
    if not isinstance(value, str):
        raise TensorError(f"tensor {name!r}: BYTES data must be strings")
    if not encoded:
        return value.encode("utf-8")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise TensorError(f"tensor {name!r}: data marked base64 is not base64: {exc}") from exc


def as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TensorError(f"BYTES values must be bytes or str, got {type(value).__name__}")
