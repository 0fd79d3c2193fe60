"""The gameplay candidates, built small once per test session (seconds): both bundles, the
held-out idle-heavy log and the figures of 200 matches each against the scripted opponents."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from workloads.gameplay.build import BuildConfig, build

SMALL = BuildConfig(train_matches=120, heldout_matches=40, eval_matches=200, epochs=10, seed=0)


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("gameplay")
    return out, build(out, SMALL)
