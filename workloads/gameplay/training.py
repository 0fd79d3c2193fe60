"""Training a policy: a small MLP from the state vector to action logits, fitted with torch on
logged play, and its export to ONNX with a free batch axis.

`class_weighting` sets how far the loss evens out the classes: 0 is plain cross-entropy (the
model learns the log's idle-heavy prior), 1 weighs each class by its inverse frequency.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from workloads.gameplay.features import FEATURES
from workloads.gameplay.game import ACTIONS
from workloads.gameplay.logs import INPUT_NAME, Log

OUTPUT_NAME = "logits"


class PolicyNet(nn.Module):
    """state (n, FEATURES) -> action logits (n, len(ACTIONS))."""

    def __init__(self, hidden: int = 64) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(FEATURES, hidden), nn.ReLU(),
                                    nn.Linear(hidden, hidden), nn.ReLU(),
                                    nn.Linear(hidden, len(ACTIONS)))

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.layers(state)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30
    batch_size: int = 256
    lr: float = 3e-3
    hidden: int = 64
    class_weighting: float = 0.0
    seed: int = 0


def class_weights(actions: np.ndarray, power: float) -> np.ndarray:
    """Per-class loss weights (inverse frequency ** power), scaled to average 1 over the rows;
    a class absent from the log gets the largest weight present."""
    counts = np.bincount(actions, minlength=len(ACTIONS)).astype(np.float64)
    weights = np.where(counts > 0, (counts.sum() / np.maximum(counts, 1)) ** power, 0.0)
    weights[counts == 0] = weights.max()
    return weights / (weights[actions].mean())


def train(log: Log, config: TrainConfig,
          progress: Callable[[int, int], None] | None = None) -> PolicyNet:
    """The policy fitted to the log; deterministic for a config and a log on one thread.
    `progress(epoch, epochs)` is called after each epoch."""
    torch.manual_seed(config.seed)
    net = PolicyNet(config.hidden)
    x = torch.from_numpy(log.states)
    y = torch.from_numpy(log.actions)
    weight = torch.tensor(class_weights(log.actions, config.class_weighting), dtype=torch.float32)
    loss_fn = nn.CrossEntropyLoss(weight=weight)
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    order = torch.Generator().manual_seed(config.seed)
    for epoch in range(1, config.epochs + 1):
        for batch in torch.randperm(len(y), generator=order).split(config.batch_size):
            opt.zero_grad()
            loss_fn(net(x[batch]), y[batch]).backward()
            opt.step()
        if progress is not None:
            progress(epoch, config.epochs)
    return net.eval()


def predict(net: PolicyNet, states: np.ndarray) -> np.ndarray:
    """Action indices for a batch of states."""
    with torch.inference_mode():
        return net(torch.from_numpy(np.asarray(states, np.float32))).argmax(-1).numpy()


def accuracy(net: PolicyNet, log: Log) -> float:
    return float(np.mean(predict(net, log.states) == log.actions))


def export_onnx(net: PolicyNet, path: Path) -> Path:
    """The network as ONNX: input `state` [-1, FEATURES] FP32, output `logits` [-1, actions]."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(net, (torch.zeros(1, FEATURES),), str(path), dynamo=False,
                          opset_version=17, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
    return path
