"""Stage 2, the recognizer: a trained CNN that names each detected symbol.

Inputs are the detector's masked ink patches, scaled (aspect kept) into a 32×32 square, so the
recognizer sees exactly what it will see in service. Training crops come from running the
detector on training images and keeping the detections that match a true box.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from torch import nn

from workloads.ocr.dataset import Sample
from workloads.ocr.detector import detect, match
from workloads.ocr.formulas import CLASS_INDEX, SYMBOL_CLASSES

SIZE = 32
INNER = 28


@lru_cache(maxsize=4096)
def _bilinear_weights(size_in: int, size_out: int) -> np.ndarray:
    """(size_out, size_in) float64 weights of Pillow's BILINEAR resize along one axis.

    The same coefficients Pillow computes (a triangle filter widened by the scale when
    shrinking, normalised per output pixel), so a crop is Pillow's bit for bit while costing
    two small matrix products instead of a PIL image per symbol. Cached: sizes repeat.
    """
    scale = size_in / size_out
    support = max(scale, 1.0)  # the triangle's support is 1, scaled when shrinking
    centers = (np.arange(size_out, dtype=np.float64) + 0.5) * scale
    lo = np.maximum((centers - support + 0.5).astype(np.int64), 0)
    hi = np.minimum((centers + support + 0.5).astype(np.int64), size_in)
    x = np.arange(size_in, dtype=np.float64)
    # Pillow multiplies by the reciprocal and sums the taps in order: so do these lines.
    weights = np.maximum(1.0 - np.abs((x[None, :] - centers[:, None] + 0.5) * (1.0 / support)),
                         0.0)
    weights[(x[None, :] < lo[:, None]) | (x[None, :] >= hi[:, None])] = 0.0
    total = np.cumsum(weights, axis=1)[:, -1:]
    np.divide(weights, total, out=weights, where=total != 0.0)
    weights.setflags(write=False)
    return weights


def _resized(patch: np.ndarray, nh: int, nw: int) -> np.ndarray:
    """Pillow's BILINEAR resize of a float32 patch: horizontal pass, float32, vertical pass."""
    h, w = patch.shape
    out = patch
    if nw != w:
        out = (out.astype(np.float64) @ _bilinear_weights(w, nw).T).astype(np.float32)
    if nh != h:
        out = (_bilinear_weights(h, nh) @ out.astype(np.float64)).astype(np.float32)
    return out


def _placement(h: int, w: int) -> tuple[int, int, int, int]:
    """Scaled height and width (longer side INNER, aspect kept) and the top-left offset."""
    scale = INNER / max(h, w)
    nw, nh = max(int(round(w * scale)), 1), max(int(round(h * scale)), 1)
    return nh, nw, (SIZE - nh) // 2, (SIZE - nw) // 2


def crop_tensor(patch: np.ndarray) -> np.ndarray:
    """A symbol patch centred in a SIZE×SIZE float32 square, longer side scaled to INNER."""
    nh, nw, y, x = _placement(*patch.shape)
    out = np.zeros((SIZE, SIZE), dtype=np.float32)
    out[y: y + nh, x: x + nw] = _resized(patch.astype(np.float32, copy=False), nh, nw)
    return out


def crops_batch(patches: Sequence[np.ndarray]) -> np.ndarray:
    """(N, 1, SIZE, SIZE) float32, the recognizer's input, written in place into one array."""
    out = np.zeros((len(patches), 1, SIZE, SIZE), dtype=np.float32)
    for k, patch in enumerate(patches):
        nh, nw, y, x = _placement(*patch.shape)
        out[k, 0, y: y + nh, x: x + nw] = _resized(patch.astype(np.float32, copy=False), nh, nw)
    return out


class MaxPool2x2(nn.MaxPool2d):
    """`nn.MaxPool2d(2)` with the same outputs, bit for bit, several times faster on the CPU.

    Eager torch's CPU max-pool kernel is slow for these small maps (it cost more than the
    convolutions); the elementwise maximum of the four strided 2×2 phases is the same maximum.
    ONNX export keeps the MaxPool operator, which ONNX Runtime and TensorRT run well.
    """

    def __init__(self) -> None:
        super().__init__(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (torch.onnx.is_in_onnx_export() or x.dim() != 4 or x.shape[-1] % 2
                or x.shape[-2] % 2 or x.requires_grad):
            return super().forward(x)
        n, c, h, w = x.shape
        v = x.view(n, c, h // 2, 2, w // 2, 2) if x.is_contiguous() else x.reshape(
            n, c, h // 2, 2, w // 2, 2)
        return torch.maximum(v[:, :, :, 0], v[:, :, :, 1]).amax(dim=-1)


class SymbolCNN(nn.Module):
    """Conv-ReLU-pool stages then a small classifier head; sizes set per candidate."""

    def __init__(self, channels: Sequence[int] = (8, 16), hidden: int = 64,
                 dropout: float = 0.0, n_classes: int = len(SYMBOL_CLASSES)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 1
        for c in channels:
            layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.ReLU(), MaxPool2x2()]
            c_in = c
        self.features = nn.Sequential(*layers)
        side = SIZE // 2 ** len(channels)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(c_in * side * side, hidden), nn.ReLU(),
            nn.Dropout(dropout), nn.Linear(hidden, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@dataclass
class CropSet:
    x: np.ndarray  # (N, 1, SIZE, SIZE)
    y: np.ndarray  # (N,) class indices


def crop_set(samples: Sequence[Sample]) -> CropSet:
    """Detector crops of the samples, labelled by the true symbol they match."""
    xs, ys = [], []
    for s in samples:
        det = detect(s.image)
        for ti, pi in match(det.boxes, s.boxes).items():
            xs.append(crop_tensor(det.patches[pi]))
            ys.append(CLASS_INDEX[s.classes[ti]])
    return CropSet(np.stack(xs)[:, None], np.asarray(ys, dtype=np.int64))


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random shifts of up to two pixels and ink gain: cheap, and it helps small nets."""
    dx, dy = (int(v) for v in torch.randint(-2, 3, (2,), generator=gen))
    x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
    gain = 0.7 + 0.6 * torch.rand((x.shape[0], 1, 1, 1), generator=gen)
    return (x * gain).clamp(0.0, 1.0)


def train_classifier(model: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int,
                     lr: float = 2e-3, batch_size: int = 128, seed: int = 0,
                     augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
                     progress: Callable[[str], None] | None = None) -> list[float]:
    """Adam with cross-entropy; returns the mean training loss per epoch."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(epochs, 1))
    loss_fn = nn.CrossEntropyLoss()
    losses = []
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(xt), generator=gen)
        total = 0.0
        for start in range(0, len(xt), batch_size):
            idx = order[start: start + batch_size]
            xb = xt[idx]
            if augment is not None:
                xb = augment(xb, gen)
            opt.zero_grad()
            loss = loss_fn(model(xb), yt[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        sched.step()
        losses.append(total / max(len(xt), 1))
        if progress is not None:
            progress(f"epoch {epoch + 1}/{epochs} loss {losses[-1]:.4f}")
    model.eval()
    return losses


def train_recognizer(model: SymbolCNN, crops: CropSet, epochs: int, seed: int = 0,
                     progress: Callable[[str], None] | None = None) -> list[float]:
    return train_classifier(model, crops.x, crops.y, epochs, seed=seed, augment=_augment,
                            progress=progress)


def accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    return float((logits.argmax(axis=1) == y).mean()) if len(y) else 0.0
