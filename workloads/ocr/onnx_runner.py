"""A runner over ONNX files a candidate ships (the mobile target's int8 networks).

A float candidate ships torch weights and serving exports them to whichever backend the manifest
names; a quantized candidate ships the quantized ONNX files themselves, which only ONNX Runtime
runs, so the pipeline runs them through this runner and hands serving no networks to load.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import onnxruntime as ort


class OnnxFileRunner:
    """One CPU ONNX Runtime session per network file; `run` is thread-safe (as ORT's is)."""

    def __init__(self, files: Mapping[str, Path], threads: int | None = None,
                 options: ort.SessionOptions | None = None) -> None:
        options = options or ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        if threads:
            # The same intra-op thread count as torch gets, so the two compare like for like.
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.files = {name: Path(path) for name, path in files.items()}
        self.sessions = {name: ort.InferenceSession(str(path), sess_options=options,
                                                    providers=["CPUExecutionProvider"])
                         for name, path in self.files.items()}
        self._inputs = {name: s.get_inputs()[0].name for name, s in self.sessions.items()}

    def run(self, name: str, batch: np.ndarray) -> np.ndarray:
        session = self.sessions[name]
        feed = {self._inputs[name]: np.ascontiguousarray(batch, dtype=np.float32)}
        return session.run(None, feed)[0]


# Images per run of the one-graph model. The graph's merge rules compare every pair of
# components in a run, so its cost grows with the square of a run's components: on the offline
# test, 2 to 4 images a run cost least per image (0.79 ms), 32 cost twice that (1.64 ms).
GRAPH_BATCH = 4


class GraphReading(NamedTuple):
    """One image as the one graph reads it: boxes [K, 4] int64 (x0, y0, x1, y1), classes [K]
    (class indices), symbol_probs [K, classes] (softmax), and per symbol its relation: parent
    (a symbol index, -1 for the first), relation (an aligner.RELATION_CODES index) and
    relation_prob."""

    boxes: np.ndarray
    classes: np.ndarray
    symbol_probs: np.ndarray
    parent: np.ndarray
    relation: np.ndarray
    relation_prob: np.ndarray


_READ = ("boxes", "classes", "symbol_probs", "parent", "relation", "relation_prob")


class OneGraphRunner(OnnxFileRunner):
    """A one-graph candidate's session: "onegraph" (images -> boxes, classes and relations,
    holding the abvoc op library's nodes, so the library is registered)."""

    def __init__(self, files: Mapping[str, Path], threads: int | None = None) -> None:
        from workloads.ocr import ort_ops

        super().__init__(files, threads, ort_ops.session_options())

    def read(self, images: Sequence[np.ndarray]) -> list[GraphReading]:
        """Each image's reading, from one graph run per GRAPH_BATCH images (each run's images
        padded to its largest, with their sizes)."""
        out: list[GraphReading] = []
        for start in range(0, len(images), GRAPH_BATCH):
            out += self._run_graph(images[start: start + GRAPH_BATCH])
        return out

    def _run_graph(self, images: Sequence[np.ndarray]) -> list[GraphReading]:
        sizes = np.array([img.shape for img in images], dtype=np.int64)
        batch = np.zeros((len(images), *sizes.max(axis=0)), dtype=np.uint8)
        for k, img in enumerate(images):
            batch[k, : img.shape[0], : img.shape[1]] = img
        session = self.sessions["onegraph"]
        owner, *outputs = session.run(["image_index", *_READ], {"images": batch, "sizes": sizes})
        ends = np.searchsorted(owner, np.arange(len(images)), side="right")
        starts = np.concatenate([[0], ends[:-1]])
        return [GraphReading(*(o[a:b] for o in outputs))
                for a, b in zip(starts, ends, strict=True)]
