"""The OCR pipeline as abvoc serves it: the factory an OCR bundle's "pipeline" stage names.

`open_pipeline(folder)` loads a trained candidate from its bundle folder and returns it wrapped
so that `predict` gives serving's Answers (LaTeX, confidence, each stage's output, and a slice
guessed from the answer: the request says nothing of its level). Serving loads the networks on
the manifest's backend and batches whole requests; nothing here knows which backend runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core.latex import tokenize
from serving.backends.base import Networks
from serving.pipelines import Runner
from serving.servable import Answer
from workloads.ocr.pipeline import Pipeline

_MIDDLE_SCHOOL = {"^", "_", "\\sqrt", "(", ")", "\\alpha", "\\beta", "\\pi", "\\theta"}


def infer_level(latex: str) -> str:
    """'middle' when the output uses middle-school structure, else 'elementary'."""
    tokens = tokenize(latex)
    if _MIDDLE_SCHOOL.intersection(tokens) or tokens.count("\\frac") > 1:
        return "middle"
    return "elementary"


class ServedOCR:
    """An OCR Pipeline behind serving's image pipeline interface (serving.pipelines)."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def networks(self) -> Networks:
        return self.pipeline.networks()

    def with_runner(self, runner: Runner) -> ServedOCR:
        return ServedOCR(self.pipeline.with_runner(runner))

    def predict(self, images: Sequence[np.ndarray]) -> list[Answer]:
        return [Answer(r.latex, "latex", r.confidence, r.stages,
                       slice=f"unknown/{infer_level(r.latex)}")
                for r in self.pipeline.predict(images)]


def open_pipeline(folder: Path) -> ServedOCR:
    return ServedOCR(Pipeline.load(folder))
