"""The one interface every loaded candidate has, whatever runs it, so the serving path (route,
run, record, shadows, guardrails) is written once:

    answer = candidate.predict(payload)   # an Answer; raises for bad input or a failed model
    candidate.close()

`accepts` says what payload a candidate takes: "tensors" (named numpy arrays checked against
the bundle's V2 signature: a local bundle or a remote endpoint) or "image" (a decoded image,
the image pipelines behind /v1/predict).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from core.errors import AbvocError
from core.events import value_text
from core.output_types import MAX_JSON_CHARS, STAGE_ANSWERS, OutputKind
from serving.batch_request import Finish
from serving.bundles.manifest import Manifest, TensorSpec
from serving.bundles.runner import BundleRunner, check_inputs
from serving.bundles.stages import Tensors
from serving.bundles.tensors import TensorError
from serving.outputs import AnswerTooLong, CandidateOutputError, read_answer
from serving.remote import RemoteClient

TENSORS = "tensors"
IMAGE = "image"


@dataclass(frozen=True)
class Answer:
    """One prediction as the event records it, and what the caller gets back (`tensors`)."""

    output: Any
    output_type: str
    confidence: float | None = None
    stages: dict[str, Any] = field(default_factory=dict)
    slice: str | None = None
    tensors: dict[str, np.ndarray] = field(default_factory=dict)


class Servable(Protocol):
    accepts: str
    output_type: str

    def predict(self, payload: Any, finish: Finish | None = None) -> Any:
        """The Answer; with `finish`, what its `each` made of the Answer (on the candidate's
        batcher, where it has one)."""

    def close(self) -> None: ...


def one_item(specs: tuple[TensorSpec, ...], inputs: Mapping[str, np.ndarray],
             kind: OutputKind) -> None:
    """A prediction is one item a customer can correct: inputs with a batch axis (-1 first)
    must hold one row, unless the output is JSON (which can describe many)."""
    if kind.type == "json":
        return
    for spec in specs:
        if spec.shape[0] == -1 and inputs[spec.name].shape[0] != 1:
            raise TensorError(f"input {spec.name!r} holds {inputs[spec.name].shape[0]} rows; "
                              f"send one item per request (shape [1, ...]): each answer of a "
                              f"{kind.type!r} candidate is one prediction")


class BatchTooLarge(AbvocError):
    """A JSON answer to a request of many items is past MAX_JSON_CHARS: the caller's batch is
    too large, never the candidate's failure (a caller could otherwise pause an arm)."""

    status = 413


def items(specs: tuple[TensorSpec, ...], inputs: Mapping[str, np.ndarray]) -> int:
    """How many items the request holds along its batch axis (1 where no input has one)."""
    return max((len(inputs[s.name]) for s in specs if s.shape and s.shape[0] == -1
                and s.name in inputs and np.ndim(inputs[s.name]) > 0), default=1)


class _TensorCandidate:
    accepts = TENSORS

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self.kind = OutputKind(manifest.output.type, manifest.output.classes,
                               manifest.output.schema)
        self.output_type = self.kind.type

    def _checked(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        tensors = check_inputs(self.manifest.inputs, inputs)
        one_item(self.manifest.inputs, tensors, self.kind)
        return tensors

    def _answer(self, outputs: Mapping[str, np.ndarray], count: int = 1) -> Answer:
        """The answer read as the output type; one too long for `count` > 1 items is a 413."""
        try:
            output, confidence = read_answer(self.kind, outputs)
        except AnswerTooLong:
            if count <= 1:
                raise
            raise BatchTooLarge(f"the answer to these {count} items is longer than "
                                f"{MAX_JSON_CHARS} characters, the most an answer may hold: "
                                "send fewer items per request") from None
        return Answer(output, self.kind.type, confidence, tensors=dict(outputs))


class BundleCandidate(_TensorCandidate):
    """A local bundle, run in this process by its stages; what each stage that declares an
    answer answered is recorded with the prediction, so an error can be blamed on a stage."""

    def __init__(self, runner: BundleRunner) -> None:
        super().__init__(runner.manifest)
        self.runner = runner

    def predict(self, payload: Any, finish: Finish | None = None) -> Any:
        checked = self._checked(payload)
        count = items(self.manifest.inputs, checked)
        if finish is None:
            return self._traced_answer(self.runner.predict_traced(checked), count)
        return self.runner.predict_traced(
            checked, finish.after(lambda traced: self._traced_answer(traced, count)))

    def _traced_answer(self, traced: tuple[Tensors, Tensors], count: int = 1) -> Answer:
        outputs, answers = traced
        answer = self._answer(outputs, count)
        if not answers:
            return answer
        return replace(answer, stages={STAGE_ANSWERS: self._stage_answers(answers,
                                                                         answer.output)})

    def _stage_answers(self, answers: Tensors, output: Any) -> list[dict[str, str]]:
        """Each declared answer read as the output type (one that does not read is left out:
        its stage is then judged with the next), then the output as the last stage's."""
        *earlier, last = self.manifest.stages
        found = []
        for stage in earlier:
            if stage.name not in answers or stage.answer is None:
                continue
            try:
                value, _ = read_answer(self.kind, {stage.answer: answers[stage.name]})
            except CandidateOutputError:
                continue
            found.append({"stage": stage.name, "answer": value_text(value, self.kind.type)})
        return [*found, {"stage": last.name, "answer": value_text(output, self.kind.type)}]

    def close(self) -> None:
        self.runner.close()


class RemoteCandidate(_TensorCandidate):
    """A remote Open Inference Protocol endpoint; its errors (RemoteError: 502, 503, 504) and
    the time they took are the candidate's, as a local model's failure would be."""

    def __init__(self, manifest: Manifest, client: RemoteClient) -> None:
        super().__init__(manifest)
        self.client = client

    def predict(self, payload: Any, finish: Finish | None = None) -> Any:
        checked = self._checked(payload)
        answer = self._answer(self.client.infer(checked), items(self.manifest.inputs, checked))
        return answer if finish is None else finish.alone(answer)

    def close(self) -> None:
        self.client.close()
