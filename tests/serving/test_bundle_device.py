"""A bundle's `device`: where the torch backend runs its TorchScript stages (and pipeline
networks). Refused where it names a GPU the host lacks (its other refusals are among
test_bundles.py's manifest cases); on a GPU host the stage runs there and answers as on the
CPU."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from serving.bundles import BundleRunner, register_bundle
from serving.registry import Registry
from tests.support.bundles import FLOWERS, edit, refused

GPU = torch.cuda.is_available()


class Net(torch.nn.Module):
    """Class probabilities, and whether the stage ran on a GPU (1.0) or not (0.0)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.layer = torch.nn.Linear(4, 3)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        on_gpu = torch.full((features.shape[0],), float(features.is_cuda),
                            device=features.device)
        return torch.softmax(self.layer(features), dim=-1), on_gpu


def torch_bundle(bundle: Path, device: str | None) -> Path:
    """The example bundle with its classifier as TorchScript on the torch backend."""
    with warnings.catch_warnings():  # torch marks TorchScript deprecated; teams still ship it
        warnings.filterwarnings("ignore", message="`torch.jit.(script|save)` is deprecated")
        torch.jit.script(Net()).save(str(bundle / "model.pt"))
    setting = f'\ndevice = "{device}"' if device is not None else ""
    edit(bundle, 'backend = "onnxruntime"', f'backend = "torch"{setting}')
    edit(bundle, 'kind = "onnx"\npath = "model.onnx"',
         'kind = "torchscript"\npath = "model.pt"\noutputs = ["probabilities", "on_gpu"]')
    post = bundle / "post.py"  # the label stage passes the flag on
    post.write_text(post.read_text().replace('"probabilities": probabilities,',
                                             '"probabilities": probabilities,\n'
                                             '        "on_gpu": tensors["on_gpu"],'))
    return bundle


def run(registry: Registry, models: Path, bundle: Path) -> dict[str, np.ndarray]:
    info = register_bundle(registry, models, bundle)
    with BundleRunner.open(Path(info.artifacts)) as runner:
        return runner.run_stages({"features": FLOWERS})


@pytest.mark.skipif(GPU, reason="this host has a GPU: the refusal cannot happen here")
def test_a_gpu_asked_for_where_there_is_none_is_refused(registry: Registry, models: Path,
                                                        bundle: Path) -> None:
    refused(registry, models, torch_bundle(bundle, "cuda"),
            r"device 'cuda' was asked for but torch sees no CUDA GPU on this host; register "
            r"the bundle on a host with one, or set device = \"auto\"")


@pytest.mark.parametrize("device", [None, "auto", "cpu"])
def test_the_stage_runs_where_the_manifest_says(registry: Registry, models: Path, bundle: Path,
                                               device: str | None) -> None:
    out = run(registry, models, torch_bundle(bundle, device))
    on_gpu = GPU and device != "cpu"  # unset means auto
    assert out["on_gpu"].tolist() == [float(on_gpu)] * len(FLOWERS)
    np.testing.assert_allclose(out["probabilities"].sum(axis=1), 1.0, rtol=1e-5)
    described = registry.get("iris-onnx", "1").pipeline
    assert described["serving"]["device"] == (device or "auto")


@pytest.mark.skipif(not GPU, reason="bundle stage on CUDA: torch sees no CUDA GPU here")
def test_on_the_gpu_the_stage_answers_as_on_the_cpu(tmp_path: Path) -> None:
    from tests.support.bundles import copy_example, sqlite_registry

    answers = {}
    for device in ("cpu", "cuda"):
        folder = copy_example(tmp_path / device)
        registry = next(sqlite_registry(tmp_path / device))
        answers[device] = run(registry, tmp_path / device / "models",
                              torch_bundle(folder, device))
    assert answers["cuda"]["on_gpu"].tolist() == [1.0] * len(FLOWERS)
    np.testing.assert_allclose(answers["cuda"]["probabilities"],
                               answers["cpu"]["probabilities"], rtol=1e-3, atol=1e-5)
