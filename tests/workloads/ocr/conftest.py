"""A tiny trained candidate shared by the OCR tests (trained once per session, in seconds)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from core.store import schema
from core.store.db import Database
from tests.workloads.ocr.derived import DerivedCli
from workloads.ocr.candidates import train_candidate


@pytest.fixture(scope="session")
def tiny_candidate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    models = tmp_path_factory.mktemp("models")
    train_candidate("ocr-small-mixed", models, n_train=300, epochs=4, seed=0)
    return models / "ocr-small-mixed"


@pytest.fixture
def derived_cli(tiny_candidate: Path, tmp_path: Path) -> DerivedCli:
    url = f"sqlite:///{tmp_path / 'abvoc.db'}"
    with Database(url) as db:
        schema.upgrade(db)  # migrated, as the command line requires
    models = tmp_path / "models"
    shutil.copytree(tiny_candidate, models / "ocr-small-mixed")
    return DerivedCli(url, {"ABVOC_DATA_DIR": str(tmp_path), "ABVOC_DATABASE_URL": url,
                            "ABVOC_MODEL_STORE": str(models)})
