"""The team's labeled dataset for an offline test, read and checked whole before the candidate
runs once (the format: :mod:`serving.bundles.offline`), so a bad line costs no model time."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from numpy.lib import format as npy_format

from core.errors import AbvocError
from core.text import quoted_names, shown
from serving.bundles.json_input import not_too_deep, parse_json
from serving.bundles.manifest import Manifest, TensorSpec
from serving.bundles.offline_labels import truth
from serving.bundles.offline_metrics import OfflineError, slice_problem
from serving.bundles.runner import as_datatype
from serving.bundles.tensors import V2_TO_NUMPY, TensorError, json_values
from serving.images import MAX_IMAGE_BYTES, decode_image, size_error

MAX_LINE = 64 << 20
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
EXPORT_KEYS = ("id", "source", "provenance", "stage_sample")
"""Keys a line may carry beside the test's own, read past: what ``abvoc relabel export``
records of an example."""


@dataclass(frozen=True)
class Example:
    line: int
    inputs: dict[str, np.ndarray]
    label: Any
    slice: str | None
    where: str = ""
    """The dataset's name and the line, for a message about the line."""
    files: dict[str, str] = field(default_factory=dict)
    """The file each input given as ``{"file": ...}`` was read from, for messages."""


def read_dataset(path: Path, manifest: Manifest) -> list[Example]:
    """Every example of the JSONL file, checked against the manifest's inputs and output type."""
    path = Path(path)
    if not path.is_file():
        raise OfflineError(f"dataset {path} does not exist: give a JSONL file, one example a line")
    examples = []
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, 1):
            if len(raw) > MAX_LINE:
                raise OfflineError(f"{path.name} line {number} is over {MAX_LINE} bytes; put "
                                   "large inputs in .npy files beside the manifest")
            if not raw.strip():
                continue
            examples.append(_example(raw, number, path, manifest))
    if not examples:
        raise OfflineError(f"{path.name} holds no examples")
    return examples


def _example(raw: bytes, number: int, path: Path, manifest: Manifest) -> Example:
    where = f"{path.name} line {number}"
    with not_too_deep(where):  # numpy and the schema check recurse per level, as json does
        # Tensor data is bounded by its datatype (json_values), not by parse_json's 2^53.
        return _checked_example(parse_json(raw, where, free=("inputs",)), number, where, path,
                                manifest)


def _checked_example(item: Any, number: int, where: str, path: Path,
                     manifest: Manifest) -> Example:
    if not isinstance(item, dict):
        raise OfflineError(f"{where} must be an object with 'inputs', 'label' and 'slice'")
    # `source`, `provenance` and `stage_sample` (why a stage item is its whole input) are what
    # a relabel export records of each example: provenance, not part of the test.
    unknown = sorted(set(item) - {"inputs", "label", "slice", *EXPORT_KEYS})
    if unknown:
        raise OfflineError(f"{where}: unknown key(s) {quoted_names(unknown)}; use 'inputs', "
                           f"'label', 'slice' (and optionally {quoted_names(EXPORT_KEYS)})")
    inputs = item.get("inputs")
    declared = {t.name: t for t in manifest.inputs}
    if not isinstance(inputs, dict) or set(inputs) != set(declared):
        got = sorted(inputs) if isinstance(inputs, dict) else inputs
        raise OfflineError(f"{where}: 'inputs' must name the inputs "
                           f"{quoted_names(sorted(declared))}, got {shown(got)}")
    if "label" not in item:
        raise OfflineError(f"{where}: 'label' is missing: give the true {manifest.output.type}")
    slice_ = item.get("slice")
    if slice_ is not None and (problem := slice_problem(slice_)) is not None:
        raise OfflineError(f"{where}: 'slice' {problem}, got {shown(slice_)}")
    arrays = {name: _tensor(inputs[name], spec, path.parent, f"{where}: input {name!r}",
                            batched=not manifest.takes_images)
              for name, spec in declared.items()}
    files = {name: value["file"] if "file" in value else ", ".join(value["files"])
             for name, value in inputs.items() if isinstance(value, dict)}
    return Example(number, arrays, truth(manifest.output, item["label"], where), slice_, where,
                   files)


def _tensor(value: Any, spec: TensorSpec, folder: Path, where: str,
            batched: bool = True) -> np.ndarray:
    """The example's input as its declared tensor; `batched`: a leading -1 is the batch axis
    (an image pipeline's image has none: its -1s are the image's height and width)."""
    if isinstance(value, str) and value.endswith(".npy"):
        value = {"file": value}
    exact = not batched  # an image is checked as the pipeline checks it: its own datatype
    if isinstance(value, dict):
        array = _declared_type(_from_file(value, spec, folder, where, image=not batched),
                               spec, where, exact)
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            # The rule JSON data and /v2's binary tensors are held to: the caller's input to
            # fix, never an example the candidate failed on (counted wrong in its figures).
            raise OfflineError(f"{where}: {shown(value.get('file'))} holds a number that is not "
                               "finite (NaN or Infinity)")
    elif spec.datatype == "BYTES":
        array = np.asarray(_nested(value, lambda v: v.encode() if isinstance(v, str) else v),
                           dtype=object)
        if any(not isinstance(v, bytes) for v in array.flat):
            raise OfflineError(f"{where} is BYTES: give strings")
    else:
        try:  # the rule the API holds JSON tensors to
            array = json_values(value, spec.datatype, where)
        except TensorError as exc:
            raise OfflineError(exc.message) from exc
    want = len(spec.shape)
    batched = batched and want > 0 and spec.shape[0] == -1
    if array.ndim == want - 1 and batched:
        array = array[np.newaxis]  # one example: the batch axis of one
    if array.ndim != want or any(d not in (-1, n) for d, n in zip(spec.shape, array.shape,
                                                                  strict=True)):
        raise OfflineError(f"{where} has shape {list(array.shape)}; the candidate takes "
                           f"{list(spec.shape)} (-1: any size; the batch axis may be left out)")
    if batched and array.shape[0] != 1:
        raise OfflineError(f"{where} holds {array.shape[0]} items along the batch axis; give one "
                           "example per line")
    if exact and array.ndim >= 2:  # an image array is held to an upload's size rule, as served
        height, width = array.shape[:2]
        if (refused := size_error(width, height)) is not None:
            raise OfflineError(f"{where}: {refused.message}")
    return array


def _declared_type(array: np.ndarray, spec: TensorSpec, where: str, exact: bool) -> np.ndarray:
    """A file's array in the input's datatype, by the rule serving holds requests to."""
    if exact and array.dtype != V2_TO_NUMPY[spec.datatype]:
        raise OfflineError(f"{where} must be {spec.datatype}, got {array.dtype}")
    try:
        return as_datatype(array, spec.datatype, where)
    except TensorError as exc:
        raise OfflineError(exc.message) from exc


def _nested(value: Any, convert: Callable[[Any], Any]) -> Any:
    return [_nested(v, convert) for v in value] if isinstance(value, list) else convert(value)


def _from_file(value: dict, spec: TensorSpec, folder: Path, where: str,
               image: bool = False) -> np.ndarray:
    """A file input: a .npy array, a BYTES input's raw bytes, or an image pipeline's PNG or
    JPEG (`image`), decoded as /v1/predict decodes an upload (a relabel export writes them)."""
    if "files" in value:
        return _from_files(value, spec, folder, where)
    name = value.get("file")
    if set(value) != {"file"} or not isinstance(name, str) or not name:
        raise OfflineError(f"{where}: a file input is {{\"file\": \"relative/path\"}}")
    path = _beside(name, folder, where)
    if name.endswith(".npy"):
        return _npy(path, name, where)
    named = shown(name)
    if image and name.lower().endswith(IMAGE_SUFFIXES):
        if path.stat().st_size > MAX_IMAGE_BYTES:
            raise OfflineError(f"{where}: image {named} is larger than {MAX_IMAGE_BYTES} bytes")
        try:
            return decode_image(path.read_bytes())
        except AbvocError as exc:
            raise OfflineError(f"{where}: image {named}: {exc.message}") from None
    if spec.datatype != "BYTES":
        files = "a .npy file, or a PNG or JPEG image" if image else "a .npy file"
        raise OfflineError(f"{where}: {named} is read as raw bytes, which only a BYTES input "
                           f"takes; this input is {spec.datatype} (use {files})")
    array = np.empty(1, dtype=object)
    array[0] = path.read_bytes()
    return array


def _beside(name: str, folder: Path, where: str) -> Path:
    """The file `name` names, only if it lies beside the manifest (in `folder` or below)."""
    rel, named = PurePosixPath(name), shown(name)
    if rel.is_absolute() or ".." in rel.parts:
        raise OfflineError(f"{where}: file {named} must be a relative path beside the manifest")
    path = folder / rel
    if not path.resolve().is_relative_to(folder.resolve()):  # a link leading out of the folder
        raise OfflineError(f"{where}: file {named} must be a relative path beside the manifest")
    if not path.is_file():
        raise OfflineError(f"{where}: file {named} does not exist beside the manifest")
    return path


def _from_files(value: dict, spec: TensorSpec, folder: Path, where: str) -> np.ndarray:
    """A BYTES input of several values, ``{"files": [...], "shape": [...]}``: each file's raw
    bytes one value, in row-major order (a relabel export writes them so)."""
    names, shape = value.get("files"), value.get("shape")
    said = (f"{where}: a BYTES input of several values is {{\"files\": [\"relative/path\", ...], "
            "\"shape\": [...]}, one file per value in row-major order")
    if set(value) != {"files", "shape"} or not isinstance(names, list) \
            or not all(isinstance(n, str) and n for n in names) or not isinstance(shape, list) \
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise OfflineError(said)
    if math.prod(shape) != len(names):
        raise OfflineError(f"{said}; shape {shown(shape)} holds {math.prod(shape)} values, "
                           f"{len(names)} files are given")
    if spec.datatype != "BYTES":
        raise OfflineError(f"{where}: files are read as raw bytes, which only a BYTES input "
                           f"takes; this input is {spec.datatype} (use a .npy file)")
    array = np.empty(len(names), dtype=object)
    for k, name in enumerate(names):
        array[k] = _beside(name, folder, where).read_bytes()
    return array.reshape(shape)


def _npy(path: Path, name: str, where: str) -> np.ndarray:
    """The array of a .npy file whose header's claimed size is the file's: numpy allocates what
    the header claims before it reads (10^15 values are a MemoryError traceback, a few billion a
    real allocation of gigabytes), so a false claim is refused first."""
    try:
        with path.open("rb") as f:
            version = npy_format.read_magic(f)
            if version not in ((1, 0), (2, 0), (3, 0)):  # 3.0 is 2.0 with a UTF-8 header
                raise ValueError(f"unknown .npy version {version}")
            read_header = (npy_format.read_array_header_1_0 if version == (1, 0)
                           else npy_format.read_array_header_2_0)
            shape, _, dtype = read_header(f)
            held = os.fstat(f.fileno()).st_size - f.tell()
            values = math.prod(shape)
            if dtype.hasobject or dtype.itemsize == 0 or any(d < 0 for d in shape):
                raise ValueError("not an array of numbers")
            if values * dtype.itemsize != held:
                raise OfflineError(f"{where}: {shown(name)} claims {values} values of {dtype} "
                                   f"({values * dtype.itemsize} bytes) but holds {held} bytes; "
                                   "write it again with numpy.save")
            f.seek(0)
            return np.load(f, allow_pickle=False)
    except (OSError, ValueError) as exc:  # numpy's own words may advise unsafe loading
        raise OfflineError(f"{where}: {shown(name)} is not a .npy file of numbers (written by "
                           "numpy.save from a numeric array)") from exc
