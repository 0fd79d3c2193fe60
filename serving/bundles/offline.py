"""Your own offline test: a registered bundle candidate — a local bundle, or a remote Open
Inference Protocol endpoint — run on a labeled dataset the team provides, and the results stored
by slice in the shape the built-in test stores (see :mod:`serving.bundles.offline_metrics`).

The dataset is a JSONL manifest, one example a line::

    {"inputs": {"features": [5.1, 3.5, 1.4, 0.2]}, "label": "setosa", "slice": "field"}
    {"inputs": {"features": "arrays/17.npy"}, "label": "virginica", "slice": "lab"}
    {"inputs": {"image": "arrays/17.npy"}, "label": "x^{2}", "slice": "scans"}

Inputs are V2-style named tensors, one example each: a nested list (or a number or string) in
the declared datatype, with or without the batch axis; a ``.npy`` file beside the manifest; or
``{"file": ...}`` whose raw bytes are one item of a BYTES input. ``label`` is the truth in the
output type (a class, a string, a number, a JSON value); ``slice`` is optional (an example
without one counts in the overall row only); ``id`` and ``source`` (where the example came
from, e.g. the page and box `abvoc dataset split-pages` cut it from), ``provenance`` and
``stage_sample`` (what a relabel export records) are kept out of the test.
The whole file is read and checked before the candidate runs once, so a bad line costs no model
time; nothing is stored unless every example ran. Each answer is read as serving reads it
(:func:`serving.outputs.read_answer`): one that /v2 would answer 502 for fails its line, so a
candidate whose every request fails cannot post offline figures. Examples run one at a time,
so the latencies are the candidate's own per-request times (a local bundle's stages are called
directly, without the batcher's wait).
"""

from __future__ import annotations

import hashlib
import math
import os
import platform
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from numpy.lib import format as npy_format

from core.errors import AbvocError
from core.latex import TokenVocabulary
from core.output_types import OutputKind
from core.text import text_problem
from serving.bundles.json_input import not_too_deep, parse_json
from serving.bundles.manifest import (
    MANIFEST_NAME,
    Manifest,
    TensorSpec,
    load_manifest,
)
from serving.bundles.offline_labels import stored_answer, truth
from serving.bundles.offline_metrics import ALL, OfflineError, check_imported, summarize
from serving.bundles.runner import as_datatype
from serving.bundles.tensors import V2_TO_NUMPY, TensorError, json_values
from serving.outputs import CandidateOutputError, read_answer
from serving.registry import CandidateInfo, Registry

Answer = Callable[[dict[str, np.ndarray]], Any]
Progress = Callable[[int, int], None]
MAX_LINE = 64 << 20
EXPORT_KEYS = ("id", "source", "provenance", "stage_sample")
"""Keys a line may carry beside the test's own, read past: what ``abvoc relabel export``
records of an example."""


@dataclass(frozen=True)
class Example:
    line: int
    inputs: dict[str, np.ndarray]
    label: Any
    slice: str | None


def candidate_manifest(info: CandidateInfo) -> Manifest:
    """The registered bundle's manifest; a clear error for a candidate that is not a bundle."""
    folder = Path(info.artifacts) if info.artifacts else None
    if folder is None or not (folder / MANIFEST_NAME).is_file():
        raise OfflineError(f"candidate {info.name!r} v{info.version} is not a registered bundle "
                           f"(no {MANIFEST_NAME} in its artifacts); the built-in candidates are "
                           f"tested with `abvoc offline-test {info.name}` without --dataset")
    return load_manifest(folder)


# --- the dataset --------------------------------------------------------------------------------

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
        raise OfflineError(f"{where}: unknown key(s) {unknown}; use 'inputs', 'label', 'slice' "
                           f"(and optionally {', '.join(repr(k) for k in EXPORT_KEYS)})")
    inputs = item.get("inputs")
    declared = {t.name: t for t in manifest.inputs}
    if not isinstance(inputs, dict) or set(inputs) != set(declared):
        got = sorted(inputs) if isinstance(inputs, dict) else inputs
        raise OfflineError(f"{where}: 'inputs' must name the inputs {sorted(declared)}, got "
                           f"{got!r}")
    if "label" not in item:
        raise OfflineError(f"{where}: 'label' is missing: give the true {manifest.output.type}")
    slice_ = item.get("slice")
    if slice_ is not None and (not isinstance(slice_, str) or not slice_ or len(slice_) > 100
                               or slice_ == ALL):
        raise OfflineError(f"{where}: 'slice' must be a name of 1 to 100 characters other than "
                           f"{ALL!r}, got {slice_!r}")
    if slice_ is not None and (problem := text_problem(slice_, controls=True)) is not None:
        raise OfflineError(f"{where}: 'slice' {problem}, got {slice_!r}")
    arrays = {name: _tensor(inputs[name], spec, path.parent, f"{where}: input {name!r}",
                            batched=not manifest.takes_images)
              for name, spec in declared.items()}
    return Example(number, arrays, truth(manifest.output, item["label"], where), slice_)


def _tensor(value: Any, spec: TensorSpec, folder: Path, where: str,
            batched: bool = True) -> np.ndarray:
    """The example's input as its declared tensor; `batched`: a leading -1 is the batch axis
    (an image pipeline's image has none: its -1s are the image's height and width)."""
    if isinstance(value, str) and value.endswith(".npy"):
        value = {"file": value}
    exact = not batched  # an image is checked as the pipeline checks it: its own datatype
    if isinstance(value, dict):
        array = _declared_type(_from_file(value, spec, folder, where), spec, where, exact)
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


def _from_file(value: dict, spec: TensorSpec, folder: Path, where: str) -> np.ndarray:
    name = value.get("file")
    if set(value) != {"file"} or not isinstance(name, str) or not name:
        raise OfflineError(f"{where}: a file input is {{\"file\": \"relative/path\"}}")
    rel = PurePosixPath(name)
    if rel.is_absolute() or ".." in rel.parts:
        raise OfflineError(f"{where}: file {name!r} must be a relative path beside the manifest")
    path = folder / rel
    if not path.resolve().is_relative_to(folder.resolve()):  # a link leading out of the folder
        raise OfflineError(f"{where}: file {name!r} must be a relative path beside the manifest")
    if not path.is_file():
        raise OfflineError(f"{where}: file {name!r} does not exist beside the manifest")
    if name.endswith(".npy"):
        return _npy(path, name, where)
    if spec.datatype != "BYTES":
        raise OfflineError(f"{where}: {name!r} is read as raw bytes, which only a BYTES input "
                           f"takes; this input is {spec.datatype} (use a .npy file)")
    array = np.empty(1, dtype=object)
    array[0] = path.read_bytes()
    return array


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
                raise OfflineError(f"{where}: {name!r} claims {values} values of {dtype} "
                                   f"({values * dtype.itemsize} bytes) but holds {held} bytes; "
                                   "write it again with numpy.save")
            f.seek(0)
            return np.load(f, allow_pickle=False)
    except (OSError, ValueError) as exc:  # numpy's own words may advise unsafe loading
        raise OfflineError(f"{where}: {name!r} is not a .npy file of numbers (written by "
                           "numpy.save from a numeric array)") from exc


# --- running and storing ------------------------------------------------------------------------

@contextmanager
def answerer(manifest: Manifest, folder: Path) -> Iterator[Answer]:
    """Call the candidate one example at a time (a local bundle's stages, or the remote client)
    and read its answer as serving does, so an answer every request would get a 502 for is
    an error here too, never a figure."""
    kind = OutputKind(manifest.output.type, manifest.output.classes, manifest.output.schema)
    if manifest.remote is not None:
        from serving.remote import RemoteClient

        with RemoteClient.from_spec(manifest.remote, pool_size=1) as client:
            yield lambda inputs: read_answer(kind, client.infer(inputs))[0]
        return
    if manifest.takes_images:
        with _image_pipeline(manifest, folder) as predict:
            yield predict
        return
    from serving.bundles.runner import BundleRunner

    runner = BundleRunner.open(folder)
    try:
        yield lambda inputs: read_answer(
            kind, runner.run_stages(runner.check_inputs(inputs)))[0]
    finally:
        runner.close()


@contextmanager
def _image_pipeline(manifest: Manifest, folder: Path) -> Iterator[Answer]:
    """An image pipeline bundle as serving runs it, answering one image per example."""
    from serving.backends import get_backend
    from serving.bundles.validate import validate_bundle
    from serving.pipelines import ImageCandidate

    _, stages = validate_bundle(folder)
    candidate = ImageCandidate(manifest, stages[0].pipeline, get_backend(manifest.backend))
    name = manifest.inputs[0].name

    def predict(inputs: Mapping[str, np.ndarray]) -> Any:
        return candidate.predict(inputs[name]).output

    try:
        yield predict
    finally:
        candidate.close()


def evaluate(manifest: Manifest, folder: Path, examples: list[Example],
             progress: Progress | None = None) -> dict[str, Any]:
    """Run the candidate on every example and score the answers, overall and by slice."""
    answers, latencies = [], []
    started = time.perf_counter()
    with answerer(manifest, folder) as answer_to:
        for done, ex in enumerate(examples, 1):
            start = time.perf_counter()
            try:
                answer = answer_to(ex.inputs)
            except CandidateOutputError as exc:
                raise OfflineError(f"line {ex.line}: {exc.message} (serving would answer this "
                                   f"request {exc.status})", status=exc.status) from exc
            except AbvocError as exc:
                raise OfflineError(f"line {ex.line}: the candidate failed: {exc.message}",
                                   status=exc.status) from exc
            except Exception as exc:  # the team's own stage code may raise anything
                raise OfflineError(f"line {ex.line}: the candidate failed: "
                                   f"{type(exc).__name__}: {exc}") from exc
            latencies.append((time.perf_counter() - start) * 1000.0)
            answers.append(stored_answer(manifest.output, answer))
            if progress is not None:
                progress(done, len(examples))
    seconds = time.perf_counter() - started
    vocabulary = TokenVocabulary()
    by_slice: dict[str, list[int]] = defaultdict(list)
    for i, ex in enumerate(examples):
        if ex.slice is not None:
            by_slice[ex.slice].append(i)

    def row(idx: list[int]) -> dict[str, Any]:
        return summarize(manifest.output, [examples[i].label for i in idx],
                         [answers[i] for i in idx], [latencies[i] for i in idx], vocabulary)

    overall = row(list(range(len(examples))))
    overall["throughput_ips"] = round(len(examples) / seconds, 1) if seconds > 0 else None
    results: dict[str, Any] = {"output_type": manifest.output.type, "overall": overall,
                               "slices": {s: row(by_slice[s]) for s in sorted(by_slice)}}
    if manifest.output.type == "label":
        results["label_shares"] = overall["label_shares"]
    return results


def offline_test(registry: Registry, name: str, dataset: Path, version: str | None = None,
                 progress: Progress | None = None) -> dict[str, Any]:
    """Test the candidate (latest active version, or `version`) on the team's dataset and store
    the results with it; nothing is stored when a line or a call fails."""
    info = registry.get(name, version)
    manifest = candidate_manifest(info)
    dataset = Path(dataset)
    examples = read_dataset(dataset, manifest)
    results = evaluate(manifest, Path(info.artifacts), examples, progress)
    size = manifest.model_bytes(Path(info.artifacts))
    if size is not None:
        results["model"] = {"size_bytes": size, "size_mb": round(size / 2**20, 3)}
    results["test_set"] = {"source": "dataset", "path": str(dataset.resolve()),
                           "sha256": _sha256(dataset), "n": len(examples)}
    results["environment"] = {"runner": "remote" if manifest.is_remote else "bundle",
                              "backend": manifest.backend, "cpu_count": os.cpu_count(),
                              "machine": platform.machine()}
    registry.set_offline_results(info.name, info.version, results)
    return results


def import_results(registry: Registry, name: str, path: Path,
                   version: str | None = None) -> dict[str, Any]:
    """Store results computed elsewhere (a JSON file: per slice n, the metric, label shares)
    after checking them against the candidate's output type."""
    info = registry.get(name, version)
    output = candidate_manifest(info).output
    path = Path(path)
    if not path.is_file():
        raise OfflineError(f"results file {path} does not exist")
    data = parse_json(path.read_bytes(), path.name)
    with not_too_deep(path.name):  # a row's repr in a message recurses through its nesting
        results = check_imported(output, data)
    results["test_set"] = {"source": "import", "path": str(path.resolve()),
                           "sha256": _sha256(path), "n": results["overall"]["n"]}
    registry.set_offline_results(info.name, info.version, results)
    return results


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
