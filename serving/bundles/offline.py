"""Your own offline test: a registered bundle candidate — a local bundle, or a remote Open
Inference Protocol endpoint — run on a labeled dataset the team provides, and the results stored
by slice in the shape the built-in test stores (see :mod:`serving.bundles.offline_metrics`).

The dataset is a JSONL manifest, one example a line::

    {"inputs": {"features": [5.1, 3.5, 1.4, 0.2]}, "label": "setosa", "slice": "field"}
    {"inputs": {"features": "arrays/17.npy"}, "label": "virginica", "slice": "lab"}
    {"inputs": {"image": "arrays/17.npy"}, "label": "x^{2}", "slice": "scans"}

Inputs are V2-style named tensors, one example each: a nested list (or a number or string) in
the declared datatype, with or without the batch axis; a ``.npy`` file beside the manifest; or
``{"file": ...}`` whose raw bytes are one item of a BYTES input, or ``{"files": [...], "shape":
[...]}`` for several, one file per item in row-major order. ``label`` is the truth in the
output type (a class, a string, a number, a JSON value); ``slice`` is optional (an example
without one counts in the overall row only); ``id`` and ``source`` (where the example came
from, e.g. the page and box `abvoc dataset split-pages` cut it from), ``provenance`` and
``stage_sample`` (what a relabel export records) are kept out of the test.
The whole file is read and checked before the candidate runs once, so a bad line costs no model
time. Each answer is read as serving reads it (:func:`serving.outputs.read_answer`): one that
/v2 would answer 502 for, or a stage that raises, is a failure, counted as online counts a failed
prediction (a wrong answer in ``accuracy``, outside the answered-only figures, in ``failed``);
a candidate that fails on every example posts no figures, and a refused input, an unreachable
server or a timeout stops the test with nothing stored. Examples run one at a time,
so the latencies are the candidate's own per-request times (a local bundle's stages are called
directly, without the batcher's wait).
"""

from __future__ import annotations

import hashlib
import os
import platform
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from core.errors import AbvocError
from core.output_types import OutputKind
from core.text import shown
from serving.bundles.json_input import not_too_deep, parse_json
from serving.bundles.manifest import (
    MANIFEST_NAME,
    Manifest,
    load_manifest,
)
from serving.bundles.model_size import model_bytes
from serving.bundles.offline_dataset import Example, read_dataset
from serving.bundles.offline_labels import stored_answer
from serving.bundles.offline_metrics import (
    FAILED,
    OfflineError,
    check_imported,
    summarize,
)
from serving.bundles.tensors import TensorError
from serving.bundles.text_tensors import as_text, refuse_nul
from serving.outputs import CandidateOutputError, read_answer
from serving.registry import CandidateInfo, Registry

Answer = Callable[[dict[str, np.ndarray]], Any]
Progress = Callable[[int, int], None]
MAX_FAILURES_KEPT = 20  # the first failures' lines and words, kept with the results


def candidate_manifest(info: CandidateInfo) -> Manifest:
    """The registered bundle's manifest; a clear error for a candidate that is not a bundle."""
    folder = Path(info.artifacts) if info.artifacts else None
    if folder is None or not (folder / MANIFEST_NAME).is_file():
        raise OfflineError(f"candidate {info.name!r} v{info.version} is not a registered bundle "
                           f"(no {MANIFEST_NAME} in its artifacts); the built-in candidates are "
                           f"tested with `abvoc offline-test {info.name}` without --dataset")
    return load_manifest(folder)


# --- running and storing ------------------------------------------------------------------------

class Candidate(NamedTuple):
    """How to answer one example, and the inputs the candidate's model takes as text."""

    answer: Answer
    text_inputs: tuple[str, ...] = ()


@contextmanager
def answerer(manifest: Manifest, folder: Path) -> Iterator[Candidate]:
    """Call the candidate one example at a time (a local bundle's stages, or the remote client)
    and read its answer as serving does, so an answer every request would get a 502 for is
    an error here too, never a figure."""
    kind = OutputKind(manifest.output.type, manifest.output.classes, manifest.output.schema)
    if manifest.remote is not None:
        from serving.remote import RemoteClient

        with RemoteClient.from_spec(manifest.remote, pool_size=1) as client:
            yield Candidate(lambda inputs: read_answer(kind, client.infer(inputs))[0])
        return
    if manifest.takes_images:
        with _image_pipeline(manifest, folder) as predict:
            yield Candidate(predict)
        return
    from serving.bundles.runner import BundleRunner

    runner = BundleRunner.open(folder)
    try:
        yield Candidate(lambda inputs: read_answer(
            kind, runner.run_stages(runner.check_inputs(inputs)))[0], runner.text_inputs)
    finally:
        runner.close()


def _check_texts(examples: list[Example], text_inputs: tuple[str, ...]) -> None:
    """Every line's text inputs as UTF-8 without NUL, before the model runs once: text that is
    not is the dataset's to fix (serving refuses it with a 400), not a failure of the candidate,
    so the error names the line and the file."""
    for ex in examples:
        for name in text_inputs:
            file = ex.files.get(name)
            given = f"{ex.where}: input {name!r}" + (f" (file {shown(file)})" if file else "")
            try:
                texts = as_text(ex.inputs[name], given)
            except TensorError as exc:
                fix = "save the file as UTF-8 text" if file else "give UTF-8 text"
                raise OfflineError(f"{exc.message}; this candidate's model takes text: "
                                   f"{fix}") from None
            try:
                refuse_nul(texts, given)  # as serving refuses it (a 400), not a failure
            except TensorError as exc:
                raise OfflineError(exc.message) from None


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
    answers: list[Any] = []
    latencies: list[float] = []
    failures: list[OfflineError] = []
    started = time.perf_counter()
    with answerer(manifest, folder) as candidate:
        _check_texts(examples, candidate.text_inputs)
        for done, ex in enumerate(examples, 1):
            start = time.perf_counter()
            answer, failure = _answer_or_failure(candidate.answer, ex)
            latencies.append((time.perf_counter() - start) * 1000.0)
            if failure is not None:
                failures.append(failure)
                answers.append(FAILED)
            else:
                answers.append(stored_answer(manifest.output, answer))
            if progress is not None:
                progress(done, len(examples))
    if len(failures) == len(examples):
        raise OfflineError(f"{failures[0].message}; the candidate failed on every example "
                           f"({len(failures)}), so nothing was stored", status=failures[0].status)
    seconds = time.perf_counter() - started
    by_slice: dict[str, list[int]] = defaultdict(list)
    for i, ex in enumerate(examples):
        if ex.slice is not None:
            by_slice[ex.slice].append(i)

    def row(idx: list[int]) -> dict[str, Any]:
        return summarize(manifest.output, [examples[i].label for i in idx],
                         [answers[i] for i in idx], [latencies[i] for i in idx])

    overall = row(list(range(len(examples))))
    overall["throughput_ips"] = round(len(examples) / seconds, 1) if seconds > 0 else None
    results: dict[str, Any] = {"output_type": manifest.output.type, "overall": overall,
                               "slices": {s: row(by_slice[s]) for s in sorted(by_slice)}}
    if manifest.output.type == "label":
        results["label_shares"] = overall["label_shares"]
    if failures:
        results["failures"] = [f.message for f in failures[:MAX_FAILURES_KEPT]]
    return results


def _answer_or_failure(answer_to: Answer, ex: Example) -> tuple[Any, OfflineError | None]:
    """The candidate's answer to one example, or why it gave none, as serving records
    a failed prediction: an answer /v2 would send as a 502 (a remote's refusal of an input that
    matched the manifest included) or a stage that raised. An input the caller must fix (4xx),
    an unreachable server or a timeout is the run's problem, not the candidate's answer: it
    stops the test, with nothing stored."""
    try:
        return answer_to(ex.inputs), None
    except CandidateOutputError as exc:
        return None, OfflineError(f"line {ex.line}: {exc.message} (serving would answer this "
                                  f"request {exc.status})", status=exc.status)
    except AbvocError as exc:
        failed = OfflineError(f"line {ex.line}: the candidate failed: {exc.message}",
                              status=exc.status)
        if exc.status < 500 or exc.status in (503, 504):
            raise failed from exc
        return None, failed
    except Exception as exc:  # the team's own stage code may raise anything
        return None, OfflineError(f"line {ex.line}: the candidate failed: "
                                  f"{type(exc).__name__}: {str(exc)[:500]}", status=500)


def offline_test(registry: Registry, name: str, dataset: Path, version: str | None = None,
                 progress: Progress | None = None, store: bool = True) -> dict[str, Any]:
    """Test the candidate (latest active version, or `version`) on the team's dataset and store
    the results with it (unless not `store`: a look at another set, such as the hard cases a
    relabel export holds, must not replace the figures the divergence holds online against);
    nothing is stored when a line fails to read or the run stops. The results name the version
    tested (``version``)."""
    info = registry.get(name, version)
    manifest = candidate_manifest(info)
    dataset = Path(dataset)
    examples = read_dataset(dataset, manifest)
    results = evaluate(manifest, Path(info.artifacts), examples, progress)
    size = model_bytes(manifest, Path(info.artifacts))
    if size is not None:
        results["model"] = {"size_bytes": size, "size_mb": round(size / 2**20, 3)}
    results["test_set"] = {"source": "dataset", "path": str(dataset.resolve()),
                           "sha256": _sha256(dataset), "n": len(examples)}
    results["environment"] = {"runner": "remote" if manifest.is_remote else "bundle",
                              "backend": manifest.backend, "cpu_count": os.cpu_count(),
                              "machine": platform.machine()}
    # The version tested, for the requirements checked after it: the newest may be another by
    # then (one registered meanwhile).
    results["version"] = info.version
    if store:
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
