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

from serving.backends.ort_options import cpu_session_options
from workloads.ocr.detector import MAX_MARKS, check_marks, count_marks


class OnnxFileRunner:
    """One CPU ONNX Runtime session per network file; `run` is thread-safe (as ORT's is)."""

    def __init__(self, files: Mapping[str, Path], threads: int | None = None,
                 options: ort.SessionOptions | None = None) -> None:
        # Served beside the HTTP server's threads: intra-op threads sleep between calls, as every
        # ONNX session of a serving process does (serving.backends.ort_options).
        options = options or cpu_session_options()
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
# test, 2 to 4 images a run cost least per image (0.79 ms), 32 cost twice that (1.64 ms). A run
# also holds at most MAX_MARKS components (about 90 MB of pairwise tensors), so images with many
# marks run fewer at a time.
GRAPH_BATCH = 4


def graph_runs(marks: Sequence[int]) -> list[range]:
    """Consecutive images in runs of at most GRAPH_BATCH images and MAX_MARKS marks (an image
    alone may reach MAX_MARKS; check_marks has refused any above it)."""
    runs: list[range] = []
    start, total = 0, 0
    for i, count in enumerate(marks):
        if i > start and (i - start == GRAPH_BATCH or total + count > MAX_MARKS):
            runs.append(range(start, i))
            start, total = i, 0
        total += count
    if start < len(marks):
        runs.append(range(start, len(marks)))
    return runs


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

        super().__init__(files, threads, ort_ops.session_options(cpu_session_options()))

    def read(self, images: Sequence[np.ndarray]) -> list[GraphReading]:
        """Each image's reading, from graph runs of a few images (`graph_runs`; each run's
        images padded to its largest, with their sizes). The marks are counted first, so an
        image of too many is refused before the graph's pairwise tensors are made."""
        marks = [count_marks(image) for image in images]
        for count in marks:
            check_marks(count)
        out: list[GraphReading] = []
        for run in graph_runs(marks):
            out += self._run_graph([images[i] for i in run])
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
