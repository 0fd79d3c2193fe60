"""A runner over ONNX files a candidate ships (the mobile target's int8 networks).

A float candidate ships torch weights and serving exports them to whichever backend the manifest
names; a quantized candidate ships the quantized ONNX files themselves, which only ONNX Runtime
runs, so the pipeline runs them through this runner and hands serving no networks to load.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

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


class OneGraphRunner(OnnxFileRunner):
    """A one-graph candidate's sessions: "onegraph" (image -> boxes, crops, logits, holding
    the abvoc::ConnectedComponents node, so the op library is registered) and "aligner"."""

    def __init__(self, files: Mapping[str, Path], threads: int | None = None) -> None:
        from workloads.ocr import ort_ops

        super().__init__(files, threads, ort_ops.session_options())

    def detect_recognize(self, images: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """(boxes [K, 4] int64, logits [K, classes]) per image: one graph run each, since the
        graph takes one image of any size (images of a batch differ in size)."""
        session = self.sessions["onegraph"]
        return [tuple(session.run(["boxes", "logits"], {"image": np.ascontiguousarray(img)}))
                for img in images]
