"""A tiny trained candidate shared by the OCR tests (trained once per session, in seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from workloads.ocr.candidates import train_candidate


@pytest.fixture(scope="session")
def tiny_candidate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    models = tmp_path_factory.mktemp("models")
    train_candidate("ocr-small-mixed", models, n_train=300, epochs=4, seed=0)
    return models / "ocr-small-mixed"
