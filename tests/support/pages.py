"""The small extraction candidates, a fixture shared by the page workload's tests and the
/v1/pages API tests (registered for every test in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from workloads.ocr.pages.bundle import build_extractors


@pytest.fixture(scope="session")
def extractors(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """pages-xycut tuned on 3 pages and pages-fcn trained 3 epochs on 12: the real path, small."""
    torch.set_num_threads(1)
    models = tmp_path_factory.mktemp("extractors")
    built = build_extractors(models, n_train=12, n_validation=3, epochs=3, seed=0)
    return {b["name"]: Path(b["artifacts"]) for b in built}
