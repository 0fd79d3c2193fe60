"""A candidate pipeline: detector → recognizer → aligner → converter, loaded from its folder.

The neural stages run through a *runner* — anything with ``run(name, batch) -> logits`` — so
the same pipeline serves from torch, ONNX Runtime or TensorRT. `TorchRunner` is the default.
Every prediction keeps each stage's output in a compact JSON-able form, so a person (and the
evaluation engine) can tell which stage went wrong.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
from torch import nn

from serving.batching import ItemBatcher
from workloads.ocr import converter
from workloads.ocr.aligner import (
    N_FEATURES,
    RELATION_CODES,
    RelationMLP,
    all_pair_features,
    group,
    scan,
    table_decider,
)
from workloads.ocr.detector import Detection, detect
from workloads.ocr.formulas import SYMBOL_CLASSES
from workloads.ocr.recognizer import SIZE, SymbolCNN, crops_batch

if TYPE_CHECKING:  # onnxruntime loads only for candidates that run on it
    from workloads.ocr.onnx_runner import GraphReading

SPEC_FILE = "candidate.json"


class Runner(Protocol):
    def run(self, name: str, batch: np.ndarray) -> np.ndarray: ...


class TorchRunner:
    """Runs the pipeline's networks with torch on the CPU (no autograd)."""

    def __init__(self, networks: dict[str, tuple[nn.Module, np.ndarray]]) -> None:
        self.modules = {name: module.eval() for name, (module, _) in networks.items()}

    def run(self, name: str, batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.modules[name](torch.from_numpy(np.ascontiguousarray(batch))).numpy()


@dataclass
class PredictionResult:
    latex: str
    confidence: float  # 0..1: how likely every symbol and relation is right
    stages: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"latex": self.latex, "confidence": self.confidence, "stages": self.stages}


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _check_images(images: Sequence[np.ndarray]) -> None:
    for img in images:
        if not isinstance(img, np.ndarray) or img.ndim != 2 or img.dtype != np.uint8:
            raise ValueError("each image must be a 2-D grayscale uint8 array")


class Pipeline:
    """One candidate's four stages; `predict` takes a batch of grayscale uint8 images."""

    def __init__(self, spec: dict[str, Any], recognizer: SymbolCNN, aligner: RelationMLP,
                 runner: Runner | None = None) -> None:
        self.spec = spec
        self.recognizer = recognizer.eval()
        self.aligner = aligner.eval()
        self.runner: Runner = runner or TorchRunner(self.networks())

    @property
    def name(self) -> str:
        return str(self.spec.get("name", "unnamed"))

    @classmethod
    def build(cls, spec: dict[str, Any]) -> Pipeline:
        """Untrained networks shaped as the spec says (for training and for loading)."""
        rec = spec["recognizer"]
        recognizer = SymbolCNN(tuple(rec["channels"]), rec["hidden"], rec.get("dropout", 0.0))
        aligner = RelationMLP(spec["aligner"]["hidden"])
        return cls(spec, recognizer, aligner)

    @classmethod
    def load(cls, candidate_dir: str | Path, runner: Runner | None = None) -> Pipeline:
        folder = Path(candidate_dir)
        spec_path = folder / SPEC_FILE
        if not spec_path.exists():
            raise FileNotFoundError(f"{spec_path} is missing: train the candidate first")
        spec = json.loads(spec_path.read_text())
        pipe = cls.build(spec)
        if spec.get("onnx"):  # a quantized or one-graph candidate ships ONNX files
            from workloads.ocr.onnx_runner import OneGraphRunner, OnnxFileRunner

            files = {name: folder / file for name, file in spec["onnx"].items()}
            kind = OneGraphRunner if spec.get("onegraph") else OnnxFileRunner
            pipe.runner = runner or kind(files, threads=torch.get_num_threads())
            return pipe
        pipe.recognizer.load_state_dict(torch.load(folder / "recognizer.pt", weights_only=True))
        pipe.aligner.load_state_dict(torch.load(folder / "aligner.pt", weights_only=True))
        pipe.recognizer.eval()
        pipe.aligner.eval()
        pipe.runner = runner or TorchRunner(pipe.networks())
        return pipe

    def save(self, candidate_dir: str | Path) -> None:
        folder = Path(candidate_dir)
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(self.recognizer.state_dict(), folder / "recognizer.pt")
        torch.save(self.aligner.state_dict(), folder / "aligner.pt")
        (folder / SPEC_FILE).write_text(json.dumps(self.spec, indent=2, sort_keys=True))

    @property
    def ships_onnx(self) -> bool:
        """Whether the networks are ONNX files the pipeline runs itself (a quantized candidate)."""
        return bool(self.spec.get("onnx"))

    def networks(self) -> dict[str, tuple[nn.Module, np.ndarray]]:
        """The trained neural stages with an example input batch each (float32, batch first);
        none when the candidate ships ONNX files, which no backend needs to load."""
        if self.ships_onnx:
            return {}
        return {
            "recognizer": (self.recognizer, np.zeros((4, 1, SIZE, SIZE), dtype=np.float32)),
            "aligner": (self.aligner, np.zeros((4, N_FEATURES), dtype=np.float32)),
        }

    def with_runner(self, runner: Runner) -> Pipeline:
        """The same stages served through another runner (e.g. an ONNX Runtime backend); a
        pipeline that ships ONNX files keeps its own (it gave the backend nothing to load)."""
        if self.ships_onnx:
            return self
        return Pipeline(self.spec, self.recognizer, self.aligner, runner)

    def batched(self, max_batch_size: int, max_batch_time_ms: float = 0.0,
                workers: int = 1) -> BatchedPipeline:
        """The same stages, with concurrent `predict_one` calls merged into one `predict`.

        Batching the whole request, not only its networks, is what pays on a CPU: most of a
        request's time is per-call work (stage dispatch, one network call per stage, array
        set-up) that one `predict` over many images shares. Run it on an unbatched runner.
        """
        return BatchedPipeline(self, max_batch_size, max_batch_time_ms, workers)

    def close(self) -> None:
        """Nothing to stop here; `BatchedPipeline` stops its batcher."""

    def parameter_count(self) -> int:
        return sum(p.numel() for m in (self.recognizer, self.aligner) for p in m.parameters())

    # ---------------------------------------------------------------------- inference

    def predict_one(self, image: np.ndarray) -> PredictionResult:
        return self.predict([image])[0]

    def predict(self, images: Sequence[np.ndarray]) -> list[PredictionResult]:
        _check_images(images)
        read = getattr(self.runner, "read", None)
        if read is not None:  # a one-graph runner: the whole pipeline but the converter
            return [self._read_result(r) for r in read(images)]
        detections = [detect(img) for img in images]
        classes, scores = self._recognize(detections)
        return self._align_and_convert(detections, classes, scores)

    def _recognize(self, detections: Sequence[Detection]) -> tuple[list, list]:
        """One recognizer batch for the crops of every image."""
        patches = [p for d in detections for p in d.patches]
        if patches:
            probs = _softmax(self.runner.run("recognizer", crops_batch(patches)))
        else:
            probs = np.zeros((0, len(SYMBOL_CLASSES)), dtype=np.float32)
        classes, scores, start = [], [], 0
        for d in detections:
            p = probs[start: start + len(d.boxes)]
            start += len(d.boxes)
            classes.append([SYMBOL_CLASSES[int(i)] for i in p.argmax(axis=1)])
            scores.append(p)
        return classes, scores

    def _align_and_convert(self, detections: Sequence[Detection], classes: list,
                           scores: list) -> list[PredictionResult]:
        rows: list[np.ndarray] = []
        regions = []
        count = 0
        for d, cls in zip(detections, classes, strict=True):
            region = group(list(range(len(cls))), d.boxes, cls)
            count = all_pair_features(region, cls, rows, count)
            regions.append(region)
        if count:
            feats = np.concatenate(rows)
            probs = _softmax(self.runner.run("aligner", feats))
        else:
            probs = np.zeros((0, 3), dtype=np.float32)
        results = []
        decide = table_decider(probs)  # pair rows are numbered across the whole batch
        for d, cls, sc, region in zip(detections, classes, scores, regions, strict=True):
            relations: list = [(-1, "start", 1.0)] * len(cls)
            if cls:
                scan(region, decide, relations)
            results.append(self._result(d, cls, sc, relations))
        return results

    def _read_result(self, r: GraphReading) -> PredictionResult:
        relations = [(int(p), RELATION_CODES[int(k)], float(q))
                     for p, k, q in zip(r.parent, r.relation, r.relation_prob, strict=True)]
        return self._result(Detection([tuple(map(int, b)) for b in r.boxes], []),
                            [SYMBOL_CLASSES[int(i)] for i in r.classes], r.symbol_probs,
                            relations)

    def _result(self, d: Detection, cls: list[str], sc: np.ndarray,
                relations: list) -> PredictionResult:
        top = sc.max(axis=1) if len(cls) else np.zeros(0)
        order = np.argsort(-sc, axis=1)[:, 1] if len(cls) else []
        latex = converter.to_latex(cls, [(p, r) for p, r, _ in relations], d.boxes)
        rel_probs = np.array([p for _, _, p in relations]) if relations else np.zeros(0)
        confidence = float(np.prod(top) * np.prod(rel_probs)) if len(cls) else 0.0
        stages = {
            "detector": {"boxes": [list(map(int, b)) for b in d.boxes]},
            "recognizer": {
                "classes": cls,
                "scores": [round(float(s), 4) for s in top],
                "runner_up": [[SYMBOL_CLASSES[int(j)], round(float(sc[i, j]), 4)]
                              for i, j in enumerate(order)],
            },
            "aligner": {"relations": [[int(p), r, round(float(q), 4)] for p, r, q in relations]},
            "converter": {"latex": latex},
        }
        return PredictionResult(latex, round(confidence, 6), stages)


class BatchedPipeline(Pipeline):
    """A pipeline whose `predict_one`/`predict` calls from many threads run as shared batches.

    An `ItemBatcher` merges the images of concurrent calls, up to ``max_batch_size`` images or
    ``max_batch_time_ms`` after the oldest arrived, into one `Pipeline.predict`; each caller
    gets its own results. Inputs are checked in the caller's thread, so a bad image fails its
    own request before it can join a batch. `close` stops the batcher after the queued calls.
    """

    def __init__(self, pipeline: Pipeline, max_batch_size: int, max_batch_time_ms: float = 0.0,
                 workers: int = 1) -> None:
        super().__init__(pipeline.spec, pipeline.recognizer, pipeline.aligner, pipeline.runner)
        self.batcher: ItemBatcher[np.ndarray, PredictionResult] = ItemBatcher(
            self._predict_now, max_batch_size=max_batch_size,
            max_batch_time_ms=max_batch_time_ms, workers=workers, name=f"pipeline:{self.name}")

    def _predict_now(self, images: list[np.ndarray]) -> list[PredictionResult]:
        return Pipeline.predict(self, images)

    def predict_one(self, image: np.ndarray) -> PredictionResult:
        _check_images([image])
        return self.batcher.submit(image)

    def predict(self, images: Sequence[np.ndarray]) -> list[PredictionResult]:
        _check_images(images)
        return self.batcher.submit_many(images) if len(images) else []

    def with_runner(self, runner: Runner) -> Pipeline:
        return Pipeline(self.spec, self.recognizer, self.aligner,
                        self.runner if self.ships_onnx else runner)

    def batched(self, max_batch_size: int, max_batch_time_ms: float = 0.0,
                workers: int = 1) -> BatchedPipeline:
        return Pipeline(self.spec, self.recognizer, self.aligner, self.runner).batched(
            max_batch_size, max_batch_time_ms, workers)

    def close(self) -> None:
        self.batcher.close()
