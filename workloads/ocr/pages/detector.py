"""The trained extractor: a tiny fully convolutional network that paints where formulas are.

The sheet, shrunk 4× by area averaging (250 × 180), goes through a few convolutions (one with
stride 2, then dilated ones for context across a formula's width) to a map of logits on an 8-pixel
grid: 1 where a cell lies inside a formula's box (the box's core, so that neighbours stay apart),
0 elsewhere, problem numbers and ruled lines included. Connected regions of the map above 0.5
become formulas; each region's box is the union of the cleaned ink components it touches, so a
box is as tight as the ink whatever the grid. Trains on the CPU in seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from scipy import ndimage
from torch import nn

from workloads.ocr.pages.clean import components
from workloads.ocr.pages.generator import PAGE_H, PAGE_W

SHRINK = 4  # sheet pixels per network input pixel
CELL = 8  # sheet pixels per output cell
IN_H, IN_W = PAGE_H // SHRINK, PAGE_W // SHRINK
OUT_H, OUT_W = PAGE_H // CELL, PAGE_W // CELL
MERGE_GAP = 12  # pixels: symbols of one formula sit closer, a number and its formula farther
Box = tuple[int, int, int, int]


class FormulaMapNet(nn.Module):
    """(N, 1, 250, 180) ink darkness -> (N, 1, 125, 90) formula logits."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, width, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=2, dilation=2), nn.ReLU(),
            nn.Conv2d(width, width, (3, 3), padding=(1, 4), dilation=(1, 4)), nn.ReLU(),
            nn.Conv2d(width, width, (3, 3), padding=(2, 8), dilation=(2, 8)), nn.ReLU(),
            nn.Conv2d(width, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def net_input(darkness: np.ndarray) -> np.ndarray:
    """The sheet's darkness shrunk by area averaging to the network's (1, IN_H, IN_W)."""
    d = darkness[: IN_H * SHRINK, : IN_W * SHRINK]
    return d.reshape(IN_H, SHRINK, IN_W, SHRINK).mean(axis=(1, 3))[None].astype(np.float32)


def target(boxes: Sequence[Box]) -> np.ndarray:
    """1 on the cells whose centre lies in a box's core (a fifth of its height off the top and
    bottom, a cell off each side), else 0."""
    out = np.zeros((1, OUT_H, OUT_W), np.float32)
    centres_y = (np.arange(OUT_H) + 0.5) * CELL
    centres_x = (np.arange(OUT_W) + 0.5) * CELL
    for x0, y0, x1, y1 in boxes:
        dy = 0.2 * (y1 - y0)
        rows = (centres_y >= y0 + dy) & (centres_y <= y1 - dy)
        cols = (centres_x >= x0 + CELL / 2) & (centres_x <= x1 - CELL / 2)
        if not rows.any():  # a very flat formula: the cell row through its middle
            rows[min(int((y0 + y1) / 2 // CELL), OUT_H - 1)] = True
        if not cols.any():
            cols[min(int((x0 + x1) / 2 // CELL), OUT_W - 1)] = True
        out[0][np.ix_(rows, cols)] = 1.0
    return out


def train_detector(inputs: np.ndarray, targets: np.ndarray, epochs: int = 12,
                   batch_size: int = 8, lr: float = 3e-3, seed: int = 0, width: int = 16,
                   progress: Callable[[str], None] | None = None) -> FormulaMapNet:
    """Fit the network to (N, 1, IN_H, IN_W) inputs and (N, 1, OUT_H, OUT_W) targets."""
    torch.manual_seed(seed)
    net = FormulaMapNet(width)
    x, y = torch.from_numpy(inputs), torch.from_numpy(targets)
    pos = float(y.mean())
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor((1 - pos) / max(pos, 1e-6)) ** 0.5)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    order = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        net.train()
        total = 0.0
        for idx in torch.randperm(len(x), generator=order).split(batch_size):
            opt.zero_grad()
            loss = loss_fn(net(x[idx]), y[idx])
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        if progress:
            progress(f"epoch {epoch + 1}/{epochs} loss {total / len(x):.4f}")
    return net.eval()


def decode(prob: np.ndarray, binary: np.ndarray, threshold: float = 0.5,
           min_pixels: int = 10) -> list[tuple[Box, float]]:
    """Formula boxes and scores from one (OUT_H, OUT_W) probability map and the cleaned ink."""
    regions, n = ndimage.label(prob > threshold)
    if n == 0:
        return []
    comps = np.asarray(components(binary, min_pixels), dtype=np.int64).reshape(-1, 4)
    out: list[tuple[Box, float]] = []
    for i, sl in enumerate(ndimage.find_objects(regions), 1):
        score = float(prob[sl][regions[sl] == i].mean())
        rx0, ry0 = sl[1].start * CELL - CELL // 2, sl[0].start * CELL - CELL // 2
        rx1, ry1 = sl[1].stop * CELL + CELL // 2, sl[0].stop * CELL + CELL // 2
        hit = ((comps[:, 0] < rx1) & (comps[:, 2] > rx0) & (comps[:, 1] < ry1)
               & (comps[:, 3] > ry0))
        if not hit.any():
            continue
        c = comps[hit]
        out.append(((int(c[:, 0].min()), int(c[:, 1].min()), int(c[:, 2].max()),
                     int(c[:, 3].max())), round(score, 4)))
    return _merge_overlaps(out)


def _joinable(a: Box, b: Box, gap: int) -> bool:
    """Overlapping, or on one line (half the lower one's height shared) at most `gap` apart."""
    overlap_y = min(a[3], b[3]) - max(a[1], b[1])
    gap_x = max(a[0], b[0]) - min(a[2], b[2])
    if overlap_y > 0 and gap_x < 0:
        return True
    return overlap_y > 0.5 * min(a[3] - a[1], b[3] - b[1]) and gap_x <= gap


def _merge_overlaps(found: list[tuple[Box, float]],
                    gap: int = MERGE_GAP) -> list[tuple[Box, float]]:
    """Boxes that share ink, or pieces of one line closer than two formulas ever are (a formula
    the map broke in two), become one box with the better score."""
    kept = sorted(found, key=lambda f: -f[1])
    merged = True
    while merged:
        merged = False
        for i in range(len(kept)):
            for j in range(i + 1, len(kept)):
                (a, sa), (b, _) = kept[i], kept[j]
                if _joinable(a, b, gap):
                    kept[i] = ((min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]),
                                max(a[3], b[3])), sa)
                    del kept[j]
                    merged = True
                    break
            if merged:
                break
    return kept
