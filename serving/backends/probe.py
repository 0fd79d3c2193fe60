"""A small real network and a generated task, to check a backend on a host without candidates.

Tests and benchmarks need real conv nets whose outputs mean something: :class:`ProbeCNN`
classifies 32x32 grayscale crops into the :data:`SHAPES` drawn by :func:`make_shapes`, and
:func:`train_probe` trains it on the CPU in a few seconds. Nothing here is used for serving.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = ["SHAPES", "ProbeCNN", "make_shapes", "train_probe"]

SHAPES = ("blank", "hbar", "vbar", "diagonal", "cross", "box", "disc")
SIZE = 32


def _draw(kind: str, rng: np.random.Generator) -> np.ndarray:
    img = np.zeros((SIZE, SIZE), np.float32)
    cy, cx = rng.integers(10, 22, size=2)
    half = int(rng.integers(5, 10))
    thick = int(rng.integers(1, 4))
    yy, xx = np.mgrid[:SIZE, :SIZE]
    if kind == "hbar" or kind == "cross":
        img[cy : cy + thick, max(cx - half, 0) : cx + half] = 1
    if kind == "vbar" or kind == "cross":
        img[max(cy - half, 0) : cy + half, cx : cx + thick] = 1
    if kind == "diagonal":
        on_line = np.abs((yy - cy) - (xx - cx)) < thick
        img[on_line & (np.abs(xx - cx) < half)] = 1
    if kind == "box":
        lo_y, hi_y, lo_x, hi_x = cy - half, cy + half, cx - half, cx + half
        inside = (yy >= lo_y) & (yy < hi_y) & (xx >= lo_x) & (xx < hi_x)
        inner = (yy >= lo_y + thick) & (yy < hi_y - thick) & (xx >= lo_x + thick)
        img[inside & ~(inner & (xx < hi_x - thick))] = 1
    if kind == "disc":
        img[(yy - cy) ** 2 + (xx - cx) ** 2 <= half**2] = 1
    return img


def make_shapes(n: int, seed: int = 0, noise: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """`n` noisy crops (n, 1, 32, 32) float32 and their class ids (n,) int64; deterministic."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(SHAPES), size=n)
    images = np.stack([_draw(SHAPES[k], rng) for k in labels])
    images *= rng.uniform(0.6, 1.0, size=(n, 1, 1)).astype(np.float32)
    images += rng.normal(0.0, noise, size=images.shape).astype(np.float32)
    return images[:, None].astype(np.float32), labels.astype(np.int64)


class ProbeCNN(nn.Module):
    """Three conv blocks and a linear head; `width` scales it (a fast and a bigger variant)."""

    def __init__(self, width: int = 16, classes: int = len(SHAPES)) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(1, w, 3, padding=1),
            nn.BatchNorm2d(w),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1),
            nn.BatchNorm2d(2 * w),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * w, 4 * w, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Linear(4 * w, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.features(x), 1))


def train_probe(
    width: int = 16, steps: int = 150, batch: int = 64, seed: int = 0
) -> tuple[ProbeCNN, float]:
    """A ProbeCNN trained with Adam on fresh generated crops; returns it with held-out accuracy."""
    torch.manual_seed(seed)
    model = ProbeCNN(width)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    images, labels = make_shapes(steps * batch, seed=seed)
    x, y = torch.from_numpy(images), torch.from_numpy(labels)
    model.train()
    for step in range(steps):
        sl = slice(step * batch, (step + 1) * batch)
        loss = nn.functional.cross_entropy(model(x[sl]), y[sl])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    test_x, test_y = make_shapes(1000, seed=seed + 10_000)
    with torch.inference_mode():
        predicted = model(torch.from_numpy(test_x)).argmax(1).numpy()
    return model, float((predicted == test_y).mean())
