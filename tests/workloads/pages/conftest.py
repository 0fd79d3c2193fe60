"""A tiny OCR candidate, built once per session in seconds (the small extraction candidates are
the `extractors` fixture of tests/support/pages.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="session")
def tiny_ocr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from workloads.ocr.candidates import train_candidate

    torch.set_num_threads(1)
    models = tmp_path_factory.mktemp("ocr")
    train_candidate("ocr-small-mixed", models, n_train=200, epochs=2, seed=0)
    return models / "ocr-small-mixed"
