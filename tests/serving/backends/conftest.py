"""Real networks for backend tests: one trained probe classifier and one random conv net."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from serving.backends.probe import ProbeCNN, make_shapes, train_probe


@pytest.fixture(scope="session")
def trained_probe() -> tuple[ProbeCNN, float]:
    """A ProbeCNN trained for about two seconds; its accuracy shows the training was real."""
    return train_probe(width=16, steps=150, seed=0)


@pytest.fixture(scope="session")
def random_net() -> torch.nn.Module:
    """An untrained, randomly initialised conv net: agreement needs no training."""
    torch.manual_seed(7)
    return ProbeCNN(width=8).eval()


@pytest.fixture(scope="session")
def crops() -> tuple[np.ndarray, np.ndarray]:
    """2,000 held-out generated crops with their labels."""
    return make_shapes(2000, seed=123)
