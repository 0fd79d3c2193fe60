"""The two extraction candidates as image pipelines (serving.pipelines): a page in, a JSON list
of formula boxes with scores out.

Both fit the page to the working sheet, run their network on the manifest's backend and give
boxes in the caller's pixels. The XY-cut's network is only its ink threshold (it has nothing
trained; serving loads pipelines through their networks); the detector's is the trained map.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from serving.backends.base import Networks
from serving.pipelines import Runner
from serving.servable import Answer
from workloads.ocr.pages.algorithmic import CutParams, extract
from workloads.ocr.pages.clean import INK, Sheet, darkness, fit, remove_rules
from workloads.ocr.pages.detector import FormulaMapNet, decode, net_input
from workloads.ocr.pages.generator import PAGE_H, PAGE_W

Found = list[tuple[tuple[int, int, int, int], float]]
class InkThreshold(nn.Module):
    """(N, 1, H, W) darkness -> 1.0 where a pixel is ink."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x > INK).to(x.dtype)


class _Extractor:
    """Shared by both candidates: sheets in, answers out; subclasses find boxes on sheets."""

    network_name = ""

    def __init__(self, runner: Runner | None = None) -> None:
        self.runner = runner

    def _module(self) -> nn.Module:
        raise NotImplementedError

    def _example(self) -> np.ndarray:
        raise NotImplementedError

    def _find(self, sheets: list[Sheet]) -> list[Found]:
        raise NotImplementedError

    def networks(self) -> Networks:
        return {self.network_name: (self._module(), self._example())}

    def with_runner(self, runner: Runner) -> _Extractor:
        out = object.__new__(type(self))
        out.__dict__.update(self.__dict__)
        out.runner = runner
        return out

    def predict(self, images: Sequence[np.ndarray]) -> list[Answer]:
        if self.runner is None:
            raise RuntimeError("the extractor runs through a backend: call with_runner first")
        sheets = [fit(np.asarray(image, np.uint8)) for image in images]
        answers = []
        for sheet, found in zip(sheets, self._find(sheets), strict=True):
            boxes = [{"box": list(sheet.to_page(box)), "score": score} for box, score in found]
            confidence = float(np.mean([b["score"] for b in boxes])) if boxes else None
            answers.append(Answer(boxes, "json", confidence,
                                  {"extraction": {"formulas": len(boxes),
                                                  "sheet_scale": round(sheet.scale, 4),
                                                  # so a correction's boxes are held to it
                                                  "page_size": list(sheet.page_shape[::-1])}}))
        return answers


class XYCutExtractor(_Extractor):
    network_name = "ink"

    def __init__(self, params: CutParams, runner: Runner | None = None) -> None:
        super().__init__(runner)
        self.params = params

    def _module(self) -> nn.Module:
        return InkThreshold()

    def _example(self) -> np.ndarray:
        return np.zeros((1, 1, PAGE_H, PAGE_W), np.float32)

    def _find(self, sheets: list[Sheet]) -> list[Found]:
        batch = np.stack([darkness(s.image)[None] for s in sheets])
        ink = self.runner.run(self.network_name, batch)[:, 0] > 0.5
        return [extract(remove_rules(binary), self.params) for binary in ink]


class MapExtractor(_Extractor):
    network_name = "formula_map"

    def __init__(self, net: FormulaMapNet, threshold: float,
                 runner: Runner | None = None) -> None:
        super().__init__(runner)
        self.net = net.eval()
        self.threshold = threshold

    def _module(self) -> nn.Module:
        return self.net

    def _example(self) -> np.ndarray:
        return np.zeros((1, *net_input(np.zeros((PAGE_H, PAGE_W), np.float32)).shape),
                        np.float32)

    def _find(self, sheets: list[Sheet]) -> list[Found]:
        dark = [darkness(s.image) for s in sheets]
        logits = self.runner.run(self.network_name, np.stack([net_input(d) for d in dark]))
        prob = 1.0 / (1.0 + np.exp(-logits[:, 0]))
        return [decode(p, remove_rules(d > INK), self.threshold)
                for p, d in zip(prob, dark, strict=True)]


def open_xycut(folder: Path) -> XYCutExtractor:
    params = json.loads((Path(folder) / "params.json").read_text())
    return XYCutExtractor(CutParams(**params))


def open_map(folder: Path) -> MapExtractor:
    folder = Path(folder)
    config = json.loads((folder / "params.json").read_text())
    net = FormulaMapNet(int(config["width"]))
    net.load_state_dict(torch.load(folder / "formula_map.pt", weights_only=True))
    return MapExtractor(net, float(config["threshold"]))
