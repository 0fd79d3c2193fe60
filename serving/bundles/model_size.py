"""What a bundle's model weighs, for its `model_size_mb` requirement: one count for the offline
test on a dataset and a workload's built-in offline test, so one registered bundle gets one figure
whichever test measured it (a pipeline's was "not measured" on a dataset)."""

from __future__ import annotations

from pathlib import Path

from serving.bundles.manifest import Manifest

# The network files an image pipeline's factory loads from its bundle folder: torch weights,
# or the ONNX files a quantized candidate ships.
NETWORK_FILES = ("*.pt", "*.onnx")


def network_bytes(folder: str | Path) -> int:
    """The bytes of the network files at the top of `folder`."""
    return sum(p.stat().st_size for pattern in NETWORK_FILES for p in Path(folder).glob(pattern))


def model_bytes(manifest: Manifest, folder: Path) -> int | None:
    """The bytes of the bundle's model files in its `folder`: those its stages name (ONNX,
    TorchScript, engines), or for an image pipeline, which names none, the networks its factory
    loads from the folder. None where there is no model file (Python stages, a remote)."""
    if manifest.takes_images:
        return network_bytes(folder)
    paths = [folder / stage.path for stage in manifest.stages if stage.path]
    return sum(p.stat().st_size for p in paths if p.is_file()) if paths else None
