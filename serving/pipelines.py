"""Image pipeline bundles: a team's whole image-in pipeline, its networks run on a backend.

A bundle whose only stage is of kind "pipeline" names a factory shipped in the bundle,
``factory(folder) -> ImagePipeline``. Serving asks the pipeline for its networks, loads them on
the manifest's backend (torch, ONNX Runtime or TensorRT), gets the same pipeline back running
through that backend, and batches whole requests: the images of concurrent /v1/predict calls
go into one `predict`, which is what pays on a CPU, where most of a request's time is per-call
work a batch shares. Each image is checked against the manifest's `image` signature in the
caller's thread, so a bad one fails alone, before it can join a batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from core.errors import AbvocError
from serving.backends.base import Backend, Networks
from serving.batch_request import Finish
from serving.batching import ItemBatcher
from serving.bundles.manifest import Manifest, TensorSpec
from serving.bundles.runner import stage_batcher
from serving.bundles.tensors import V2_TO_NUMPY
from serving.servable import IMAGE, Answer


class Runner(Protocol):
    """What a pipeline's networks run through: a loaded backend."""

    def run(self, name: str, batch: np.ndarray) -> np.ndarray: ...


class ImagePipeline(Protocol):
    """What a "pipeline" stage's factory returns."""

    def networks(self) -> Networks:
        """Its neural stages, each a torch module and an example input batch."""
        ...

    def with_runner(self, runner: Runner) -> ImagePipeline:
        """The same pipeline with its networks run by `runner`."""
        ...

    def predict(self, images: Sequence[np.ndarray]) -> list[Answer]:
        """One answer per image, in order."""
        ...


REQUIRED = ("networks", "with_runner", "predict")


class ImageCandidate:
    """A loaded image pipeline bundle, behind the Servable interface."""

    accepts = IMAGE

    def __init__(self, manifest: Manifest, pipeline: ImagePipeline, backend: Backend) -> None:
        self.manifest = manifest
        self.output_type = manifest.output.type
        self.backend = backend
        self._spec = manifest.inputs[0]
        networks = pipeline.networks()
        self._loaded = bool(networks)  # an algorithmic pipeline may have no network at all
        if self._loaded:
            backend.load(networks)
        self.pipeline = pipeline.with_runner(backend)
        # Images of concurrent requests run as one `predict`, on the batcher's threads, each
        # request bounded by the manifest's batching.timeout_ms.
        self._batcher: ItemBatcher[np.ndarray, Answer] = stage_batcher(
            self.pipeline.predict, manifest.batching, manifest.name)

    def predict(self, payload: Any, finish: Finish | None = None) -> Any:
        return self._batcher.submit(check_image(self._spec, payload), finish)

    def close(self) -> None:
        self._batcher.close()  # runs what is queued first
        if self._loaded:
            self.backend.unload()


def check_image(spec: TensorSpec, image: Any) -> np.ndarray:
    """The image as the signature declares it (dimensions, datatype), or a 400 saying why."""
    want = np.dtype(V2_TO_NUMPY[spec.datatype])
    if not isinstance(image, np.ndarray) or image.ndim != len(spec.shape):
        raise AbvocError(f"the image must have {len(spec.shape)} dimensions "
                         f"({spec.name!r} is declared {list(spec.shape)})")
    if image.dtype != want:
        raise AbvocError(f"the image must be {spec.datatype} ({want}), got {image.dtype}")
    for axis, (size, declared) in enumerate(zip(image.shape, spec.shape, strict=True)):
        if declared != -1 and size != declared:
            raise AbvocError(f"the image's dimension {axis} is {size}; {spec.name!r} is "
                             f"declared {list(spec.shape)}")
    return image
