"""Inputs and the scipy check shared by the tests of every binding of the csrc/ccl op.

The CPython module, the torch op and the ONNX Runtime library must all give exactly what
`label_scipy` (scipy.ndimage.label with 8-connectivity + the detector's reduction) gives, on the
offline test's ink masks and on random masks. `dashes` is a page of separate strokes, more marks
than one formula has, for the detector's limit.
"""

from __future__ import annotations

import io
import warnings
from functools import cache

import numpy as np
import torch
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from workloads.ocr import torch_ops
from workloads.ocr.components import label_scipy
from workloads.ocr.dataset import OFFLINE_MIX, generate
from workloads.ocr.detector import ink_mask, ink_of
from workloads.ocr.offline import DEFAULT_TEST_SIZE

# Random boolean masks of 1..40 x 1..40 pixels (hypothesis shrinks a failure to a small one).
masks = st.tuples(st.integers(1, 40), st.integers(1, 40)).flatmap(
    lambda shape: arrays(np.bool_, shape))


@cache
def offline_masks() -> tuple[np.ndarray, ...]:
    """The ink mask of every image of the offline test: the detector's real input."""
    return tuple(ink_mask(ink_of(s.image))
                 for s in generate(DEFAULT_TEST_SIZE, OFFLINE_MIX, 0, "offline-test"))


def assert_like_scipy(labels: np.ndarray, stats: np.ndarray, mask: np.ndarray) -> None:
    """Labels (int32) and stats (int64 n x 5) equal scipy's for this mask."""
    ref_labels, ref_stats = label_scipy(mask)
    assert labels.dtype == np.int32 and stats.dtype == np.int64
    np.testing.assert_array_equal(labels, ref_labels)
    np.testing.assert_array_equal(stats, ref_stats)


class Components(torch.nn.Module):
    """The torch op alone, as a module to script or export."""

    def forward(self, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.ops.abvoc.connected_components(mask)


def export_torch_op() -> bytes:
    """The torch op exported to ONNX (one abvoc::ConnectedComponents node, H and W dynamic)."""
    torch_ops.load()
    buffer = io.BytesIO()
    # The custom symbolic belongs to the TorchScript-based exporter (the dynamo one needs
    # onnxscript, not a dependency); the project's ONNX backend exports the same way.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "You are using the legacy TorchScript-based ONNX")
        warnings.filterwarnings("ignore", "The feature will be removed", DeprecationWarning)
        torch.onnx.export(Components(), (torch.zeros(8, 9, dtype=torch.bool),), buffer,
                          dynamo=False, input_names=["mask"], output_names=["labels", "stats"],
                          dynamic_axes={"mask": {0: "h", 1: "w"}, "labels": {0: "h", 1: "w"}},
                          opset_version=torch_ops.ONNX_OPSET,
                          custom_opsets={torch_ops.ONNX_DOMAIN: 1})
    return buffer.getvalue()


def dashes(rows: int, cols: int) -> np.ndarray:
    """A page of separate dashes (flat strokes, so every pair is an "=" candidate)."""
    image = np.full((rows * 4 + 2, cols * 8 + 2), 255, np.uint8)
    for y in range(rows):
        for x in range(cols):
            image[1 + 4 * y: 3 + 4 * y, 1 + 8 * x: 6 + 8 * x] = 0
    return image

