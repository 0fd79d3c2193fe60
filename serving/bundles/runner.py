"""Running a local bundle: V2-style named numpy inputs through its stages, in order.

    runner = BundleRunner.open(folder)
    outputs = runner.predict({"features": np.array([[5.1, 3.5, 1.4, 0.2]], np.float32)})
    runner.close()

Inputs are checked against the manifest's signature first (names, datatype, sizes), so a bad
request is a 400 that names the tensor instead of an error from inside a stage. With
``max_batch_size > 1`` concurrent requests are merged whole through serving's ItemBatcher:
requests whose items agree in shape are concatenated along the first axis, run once, and
split back; a batch that fails is retried request by request, so one bad input fails alone.
Without batching the stages still run on the batcher's threads (a few, side by side), never on
the caller's: the manifest's `batching.timeout_ms` then bounds every request, and stages that
never return cost their callers a 504 instead of the service's request threads.

A stage that declares an ``answer`` (one of its outputs) has that tensor carried along with the
last stage's outputs, split by rows like them: `predict_traced` returns it by stage name, so the
candidate can record what each stage answered (see :mod:`serving.servable`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.text import quoted_names
from serving.batch_request import Finish
from serving.batching import ItemBatcher, R, T
from serving.bundles.manifest import Batching, Manifest, ManifestError, TensorSpec
from serving.bundles.stages import LoadedStage, Tensors
from serving.bundles.tensors import TensorError, fit, v2_name
from serving.bundles.text_tensors import as_text, refuse_nul
from serving.bundles.validate import validate_bundle

_ANSWER = "\0answer\0"
"""The key prefix under which a stage's answer rides with the outputs (no stage names one so)."""


class BundleRunner:
    """A loaded bundle; `predict` is safe to call from many threads."""

    def __init__(self, manifest: Manifest, stages: Sequence[LoadedStage]) -> None:
        if manifest.is_remote or not stages:
            raise ManifestError(f"candidate {manifest.name!r} has no local stages to run")
        if manifest.takes_images:
            raise ManifestError(f"candidate {manifest.name!r} is an image pipeline: it is "
                                "served by POST /v1/predict, and `abvoc offline-test --dataset` "
                                "runs it as serving does")
        self.manifest = manifest
        self.stages = list(stages)
        # The inputs its model takes as text (ONNX's tensor(string)): UTF-8 is the caller's to send.
        self.text_inputs = tuple(i.name for i in stages[0].inputs or () if i.datatype == "BYTES")
        run = self._run_many if manifest.batching.max_batch_size > 1 else self._run_one
        self._batcher = stage_batcher(run, manifest.batching, manifest.name)

    @classmethod
    def open(cls, folder: Path) -> BundleRunner:
        manifest, stages = validate_bundle(Path(folder))
        return cls(manifest, stages)

    def predict(self, inputs: Mapping[str, np.ndarray]) -> Tensors:
        """The last stage's named outputs for these named inputs."""
        return self.predict_traced(inputs)[0]

    def predict_traced(self, inputs: Mapping[str, np.ndarray],
                       finish: Finish | None = None) -> Any:
        """The last stage's named outputs, and by stage name the answer tensor of each stage
        that declares one (with `finish`, what its `each` made of them, on the batcher)."""
        checked = self.check_inputs(inputs)
        if finish is None:
            return _split_answers(self._batcher.submit(checked))
        return self._batcher.submit(checked, finish.after(_split_answers))

    def check_inputs(self, inputs: Mapping[str, np.ndarray]) -> Tensors:
        """The inputs as arrays of the declared datatypes, or a TensorError naming the tensor;
        BYTES the first stage takes as text (ONNX's tensor(string)) as str, so a value that is
        not UTF-8, or holds a NUL, is the caller's 400 here, never a failure of the candidate's
        model."""
        checked = check_inputs(self.manifest.inputs, inputs)
        for name in self.text_inputs:
            if name in checked:
                try:
                    checked[name] = as_text(checked[name], f"input {name!r}")
                except TensorError as exc:
                    raise TensorError(f"{exc.message}; this candidate's model takes text, so "
                                      "send UTF-8 (plain strings in V2 JSON)") from None
                refuse_nul(checked[name], f"input {name!r}")
        return checked

    def run_stages(self, tensors: Tensors) -> Tensors:
        return _split_answers(self._trace(tensors))[0]

    def _trace(self, tensors: Tensors) -> Tensors:
        answers = {}
        for spec, stage in zip(self.manifest.stages, self.stages, strict=True):
            tensors = stage.run(tensors)
            if spec.answer is not None and spec.answer in tensors:
                answers[_ANSWER + stage.name] = tensors[spec.answer]
        return {**tensors, **answers}

    def _run_one(self, requests: list[Tensors]) -> list[Tensors]:
        return [self._trace(request) for request in requests]

    def _run_many(self, requests: list[Tensors]) -> list[Tensors]:
        """One stage run per group of requests with equal item shapes; split back by rows."""
        results: list[Tensors | None] = [None] * len(requests)
        groups: dict[tuple, list[int]] = {}
        for i, req in enumerate(requests):
            key = tuple((n, a.shape[1:], a.dtype.str) for n, a in sorted(req.items())
                        if a.ndim >= 1)
            if len(key) != len(req):  # a scalar input cannot be concatenated
                results[i] = self._trace(req)
                continue
            groups.setdefault(key, []).append(i)
        for members in groups.values():
            rows = [len(next(iter(requests[i].values()))) for i in members]
            if any(len(a) != rows[k] for k, i in enumerate(members) for a in requests[i].values()):
                for i in members:  # inputs of unequal lengths: no common batch axis
                    results[i] = self._trace(requests[i])
                continue
            merged = {n: np.concatenate([requests[i][n] for i in members])
                      for n in requests[members[0]]}
            out = self._trace(merged)
            total = sum(rows)
            if any(np.ndim(a) == 0 or len(a) != total for a in out.values()):
                for i in members:  # the outputs have no batch axis to split by
                    results[i] = self._trace(requests[i])
                continue
            start = 0
            for i, n in zip(members, rows, strict=True):
                results[i] = {k: a[start:start + n] for k, a in out.items()}
                start += n
        return [r for r in results if r is not None]

    def close(self) -> None:
        self._batcher.close()

    def __enter__(self) -> BundleRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def stage_batcher(fn: Callable[[list[T]], Sequence[R]], batching: Batching,
                  candidate: str) -> ItemBatcher[T, R]:
    """The threads a local candidate's requests run on: one batcher worker with batching on,
    a few side by side without; either way each request waits at most `batching.timeout_ms`."""
    return ItemBatcher(fn, max_batch_size=batching.max_batch_size,
                       max_batch_time_ms=batching.max_batch_time_ms,
                       workers=batching.workers,
                       name=f"candidate {candidate!r}", timeout_ms=batching.timeout_ms)


def _split_answers(out: Tensors) -> tuple[Tensors, Tensors]:
    outputs = {k: a for k, a in out.items() if not k.startswith(_ANSWER)}
    answers = {k[len(_ANSWER):]: a for k, a in out.items() if k.startswith(_ANSWER)}
    return outputs, answers


def check_inputs(specs: Sequence[TensorSpec], inputs: Mapping[str, np.ndarray]) -> Tensors:
    """The inputs as arrays of the declared datatypes (a local bundle's or a remote candidate's
    signature), or a TensorError naming the tensor."""
    declared = {t.name: t for t in specs}
    if set(inputs) != set(declared):
        raise TensorError(f"inputs must be {quoted_names(sorted(declared))}, got "
                          f"{quoted_names(sorted(inputs))}")
    out: Tensors = {}
    for name, spec in declared.items():
        array = as_datatype(np.asarray(inputs[name]), spec.datatype, f"input {name!r}")
        if array.ndim != len(spec.shape) or any(
                d != -1 and d != n for d, n in zip(spec.shape, array.shape, strict=True)):
            raise TensorError(f"input {name!r} must have shape {list(spec.shape)} (-1: any "
                              f"size), got {list(array.shape)}")
        out[name] = array
    return out


def as_datatype(array: np.ndarray, datatype: str, what: str) -> np.ndarray:
    """`array` in the declared V2 datatype where the cast keeps its values (tensors.fit: INT64
    data for an INT32 input, FP64 for FP32, within their range), or a TensorError saying `what`
    must be; one rule for requests and for the offline test's lines, so a line serving would
    refuse is refused before the model runs."""
    if datatype == "BYTES":
        if array.dtype.kind not in "OSU":
            raise TensorError(f"{what} must be BYTES, got {v2_name(array.dtype)}")
        return array.astype(object)
    return fit(array, datatype, what)
