"""The CUDA kernel of the op gives the CPU op's labels and stats (only where it can be built)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workloads.ocr import torch_ops
from workloads.ocr.dataset import OFFLINE_MIX, generate
from workloads.ocr.detector import ink_mask, ink_of
from workloads.ocr.offline import DEFAULT_TEST_SIZE

REASON = torch_ops.cuda_unavailable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"CUDA op not built: {REASON}")


def masks() -> list[np.ndarray]:
    out = [ink_mask(ink_of(s.image))
           for s in generate(DEFAULT_TEST_SIZE, OFFLINE_MIX, 0, "offline-test")]
    rng = np.random.default_rng(6)
    out += [rng.random((int(h), int(w))) < p  # tile edges (16) crossed in every direction
            for h, w, p in zip(rng.integers(1, 200, 200), rng.integers(1, 200, 200),
                               rng.random(200), strict=True)]
    out.append(rng.random((1024, 1024)) < 0.5)
    return out


def test_cuda_and_cpu_ops_agree_on_offline_images_and_random_masks() -> None:
    torch_ops.load()
    for mask in masks():
        cpu = torch.ops.abvoc.connected_components(torch.from_numpy(mask))
        gpu = torch.ops.abvoc.connected_components(torch.from_numpy(mask).cuda())
        torch.testing.assert_close(gpu[0].cpu(), cpu[0], rtol=0, atol=0)
        torch.testing.assert_close(gpu[1].cpu(), cpu[1], rtol=0, atol=0)
