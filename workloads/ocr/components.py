"""Connected components of an ink mask with each component's box and area.

The detector's one hot loop outside the networks. `label_components` runs the native op from
csrc/ccl (built into `workloads.ocr._ccl` by `pip install -e .`) when it imports, and otherwise
scipy's `ndimage.label` plus a bincount/find_objects reduction; both give the same labels
(scipy's 8-connected numbering, by first pixel in raster order) and the same statistics.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

try:
    from workloads.ocr import _ccl
except ImportError:  # not built (e.g. a plain source checkout): scipy does the work
    _ccl = None

NATIVE = _ccl is not None
STAT_COLUMNS = ("x0", "y0", "x1", "y1", "area")  # x1, y1 exclusive
# The op as an ONNX node (torch_ops exports it, csrc/ort runs it): domain, type, default opset.
ONNX_DOMAIN = "abvoc"
ONNX_OP = "ConnectedComponents"
ONNX_OPSET = 17
_EIGHT_NEIGHBOURS = np.ones((3, 3), dtype=bool)


def _as_mask(mask: np.ndarray, ndim: int) -> np.ndarray:
    if mask.ndim != ndim:
        raise ValueError(f"mask must have {ndim} dimensions, got shape {mask.shape}")
    if mask.dtype not in (np.bool_, np.uint8):
        mask = mask != 0
    return np.ascontiguousarray(mask)


def _stats_of(raw: bytes) -> np.ndarray:
    return np.frombuffer(raw, dtype=np.int64).reshape(-1, len(STAT_COLUMNS))


def label_native(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels (int32, mask's shape) and stats (n x 5 int64) from the C++ op."""
    if _ccl is None:
        raise RuntimeError("workloads.ocr._ccl is not built; run `pip install -e .`")
    mask = _as_mask(mask, 2)
    labels = np.empty(mask.shape, dtype=np.int32)
    return labels, _stats_of(_ccl.label(mask, labels))


def label_batch_native(masks: np.ndarray, threads: int = 0) -> tuple[np.ndarray, list[np.ndarray]]:
    """A batch of masks (B x H x W), one image per thread (0 = all cores)."""
    if _ccl is None:
        raise RuntimeError("workloads.ocr._ccl is not built; run `pip install -e .`")
    masks = _as_mask(masks, 3)
    labels = np.empty(masks.shape, dtype=np.int32)
    return labels, [_stats_of(raw) for raw in _ccl.label_batch(masks, labels, threads)]


def label_scipy(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same result from scipy: label, then one bincount and find_objects pass."""
    labels, n = ndimage.label(_as_mask(mask, 2), structure=_EIGHT_NEIGHBOURS)
    stats = np.zeros((n, len(STAT_COLUMNS)), dtype=np.int64)
    if n:
        stats[:, 4] = np.bincount(labels.ravel(), minlength=n + 1)[1:]
        for k, (ys, xs) in enumerate(ndimage.find_objects(labels)):
            stats[k, :4] = (xs.start, ys.start, xs.stop, ys.stop)
    return labels, stats


def label_components(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels and per-component stats, natively when the op is built."""
    return label_native(mask) if NATIVE else label_scipy(mask)
