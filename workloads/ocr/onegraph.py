"""The whole OCR pipeline as one graph: images in; boxes, classes and relations out.

`DetectRecognize` writes the staged detector (ink against the paper median, the 99.5th
percentile threshold, the native connected-component op, the "÷" and "=" merges, dropped
specks, left-to-right order), the crops (each symbol's own ink, Pillow's BILINEAR resize as
weight matrices) and the recognizer network as tensor operations over all N components at
once (only the merge order loops, below), so `torch.onnx.export` (TorchScript-based, where the
op's symbolic is registered) writes one ONNX graph holding one `abvoc::ConnectedComponents`
node. `graph_aligner.append_aligner` then adds the aligner (its grouping and scan as two more
nodes of the op library around its network), and ONNX Runtime runs the whole with the library
of `ort_ops`. It takes a padded batch. Only the converter's string building stays in Python.

The merge rules are tested for all pairs at once; which pairs merge then follows the staged
detector's greedy order (first line or stroke first, a taken one offered to no later merge) in
two small ONNX Loops over only the components that have a candidate. Left apart: the staged
detector tests "nothing between" and later "÷" dots against boxes already grown by earlier
merges; the graph tests them against the boxes before the merge step (the same unless merged
symbols touch each other's geometry; never on the offline test). The rules compare components
pairwise, so a run's memory grows with the square of its components: about 35 MB at 500 and
350 MB at 2000 (one image of dashes; a formula has tens).
"""

from __future__ import annotations

import copy
import json
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from serving.backends.onnx_backend import _EXPORT_NOTICES, _export_lock, export_onnx
from serving.bundles.model_size import network_bytes
from workloads.ocr.aligner import N_FEATURES
from workloads.ocr.bundle import write_bundle
from workloads.ocr.components import ONNX_DOMAIN
from workloads.ocr.detector import INK_THRESHOLD, MIN_AREA
from workloads.ocr.graph_aligner import append_aligner
from workloads.ocr.pipeline import SPEC_FILE, Pipeline
from workloads.ocr.recognizer import INNER, SIZE

_F64 = torch.float64


def _median_paper(images: torch.Tensor, valid: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """[B] np.median of each image's own pixels (the mean of the two middle ones), at least 1:
    from a 256-bin histogram per image, as detector._median_uint8 does, not a sort."""
    batch = torch._shape_as_tensor(images)[0]
    bins = images.reshape(batch, -1).to(torch.int64) + (torch.arange(batch) * 256)[:, None]
    counts = torch.zeros(batch * 256, dtype=torch.int64).scatter_add(
        0, bins.reshape(-1), valid.reshape(-1).to(torch.int64))
    below = torch.cumsum(counts.reshape(batch, 256), 1)
    lo = (below < ((n - 1) // 2 + 1)[:, None]).sum(1)  # the first level reaching the rank
    hi = (below < (n // 2 + 1)[:, None]).sum(1)
    return torch.clamp((lo.to(_F64) + hi.to(_F64)) / 2, min=1.0).to(torch.float32)


def _threshold(ink: torch.Tensor, valid: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """[B] max(0.25, INK_THRESHOLD * np.percentile(ink, 99.5)) as float32 (numpy's linear
    method) over each image's own pixels; the two values it reads are among the few largest,
    so a small top-k replaces a sort (padding, at -1, is never among them)."""
    batch = torch._shape_as_tensor(ink)[0]
    index = 0.995 * (n - 1).to(_F64)
    below = torch.floor(index)
    gamma = index - below
    k = n - below.to(torch.int64)  # ranks index and index + 1 from the top: k-1 and k-2
    flat = torch.where(valid, ink, torch.full_like(ink, -1.0)).reshape(batch, -1)
    top = torch.topk(flat, k.amax(), dim=1).values.to(_F64)
    a = top.gather(1, (k - 1)[:, None])[:, 0]
    b = top.gather(1, torch.clamp(k - 2, min=0)[:, None])[:, 0]
    value = torch.where(gamma >= 0.5, b - (b - a) * (1 - gamma), a + (b - a) * gamma)
    return torch.clamp(INK_THRESHOLD * value, min=0.25).to(torch.float32)


def _flat(x0: torch.Tensor, y0: torch.Tensor, x1: torch.Tensor, y1: torch.Tensor) -> torch.Tensor:
    return (x1 - x0) >= 2.2 * (y1 - y0)


def _greedy_divides(above: torch.Tensor, below: torch.Tensor, lines: torch.Tensor
                    ) -> torch.Tensor:
    """The staged detector's order: each line with a candidate dot, in label order, takes one
    dot above and one below when exactly one of each is not taken yet. An ONNX Loop over
    those few lines only; returns [line, dot] joins."""
    idx = torch.arange(above.size(1))
    owner = torch.full_like(idx, -1)
    for i in range(lines.size(0)):
        line = lines[i]
        up, down = above[line] & (owner < 0), below[line] & (owner < 0)
        ok = (up.sum() == 1) & (down.sum() == 1)
        dots = ((idx == torch.argmax(up.to(torch.int64)))
                | (idx == torch.argmax(down.to(torch.int64))))
        owner = torch.where(dots & ok, line, owner)
    return owner[None, :] == idx[:, None]


def _greedy_equals(pair: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
    """The staged detector's order: each stroke with a candidate, in label order, not taken
    itself, takes the first candidate after it not taken yet. An ONNX Loop over those few
    strokes only; returns [a, b] joins."""
    idx = torch.arange(pair.size(1))
    owner = torch.full_like(idx, -1)
    for i in range(starts.size(0)):
        a = starts[i]
        row = pair[a] & (owner < 0)
        ok = row.any() & (owner[a] < 0)
        owner = torch.where((idx == torch.argmax(row.to(torch.int64))) & ok, a, owner)
    return owner[None, :] == idx[:, None]


def _scripted(fn: Callable) -> Callable:
    """TorchScript of a loop, so the TorchScript-based exporter writes an ONNX Loop (the
    deprecation notice concerns that exporter's path, which the op's symbolic needs)."""
    with warnings.catch_warnings():
        # Any category: a FutureWarning in torch 2.15, a DeprecationWarning in 2.11.
        warnings.filterwarnings("ignore", message=".*torch.jit.script.* is deprecated")
        return torch.jit.script(fn)


_greedy_divides = _scripted(_greedy_divides)
_greedy_equals = _scripted(_greedy_equals)


def _divides(box: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
    """[line, dot] pairs that make a "÷": a flat line with exactly one dot above and below
    (`same`: [N, N], whether two components are of the same image)."""
    x0, y0, x1, y1 = (box[:, k] for k in range(4))
    w, h = x1 - x0, y1 - y0
    flat = _flat(x0, y0, x1, y1)
    size = torch.maximum(w, h)[None, :]  # [line, dot]
    lw, lh = w[:, None], h[:, None]
    gap = torch.maximum(y0[None, :], y0[:, None]) - torch.minimum(y1[None, :], y1[:, None])
    dot = (same & flat[:, None] & ~flat[None, :] & (size <= 3 * lh + 1) & (size <= 0.45 * lw)
           & (torch.abs((x0[None, :] + x1[None, :]) / 2 - (x0[:, None] + x1[:, None]) / 2)
              <= 0.2 * lw)
           & (gap > 0) & (gap <= torch.maximum(2.5 * size, 0.5 * lw)))
    above = dot & (y1[None, :] <= y0[:, None])
    below = dot & (y0[None, :] >= y1[:, None])
    return _greedy_divides(above, below, torch.nonzero((above | below).any(1))[:, 0])


def _equals(box: torch.Tensor, alive: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
    """[a, b] pairs that make an "=": the first fitting b after a for each a not taken."""
    x0, y0, x1, y1 = (box[:, k] for k in range(4))
    w = x1 - x0
    flat = _flat(x0, y0, x1, y1) & alive
    n = torch._shape_as_tensor(box)[0]
    idx = torch.arange(n)
    gap = torch.maximum(y0[:, None], y0[None, :]) - torch.minimum(y1[:, None], y1[None, :])
    narrow = torch.minimum(w[:, None], w[None, :])
    wide = torch.maximum(w[:, None], w[None, :])
    overlap = torch.minimum(x1[:, None], x1[None, :]) - torch.maximum(x0[:, None], x0[None, :])
    pair = (same & (idx[:, None] < idx[None, :]) & flat[:, None] & flat[None, :] & (gap > 0)
            & (overlap >= 0.6 * narrow) & (narrow >= 0.55 * wide) & (gap <= 0.6 * narrow))
    # Nothing in the strip between the two strokes: every component c against the few pairs
    # that fit so far ([pairs, N], not [N, N, N]).
    fits = torch.nonzero(pair)
    ia, ib = fits[:, 0], fits[:, 1]
    a_top = y0[ia] < y0[ib]
    top_y1 = torch.where(a_top, y1[ia], y1[ib])[:, None]
    bottom_y0 = torch.where(a_top, y0[ib], y0[ia])[:, None]
    sx0 = torch.maximum(x0[ia], x0[ib])[:, None]
    sx1 = torch.minimum(x1[ia], x1[ib])[:, None]
    inside = ((x1[None, :] > sx0) & (x0[None, :] < sx1) & (y1[None, :] > top_y1)
              & (y0[None, :] < bottom_y0))
    other = (idx[None, :] != ia[:, None]) & (idx[None, :] != ib[:, None]) & alive[None, :]
    clear = ~(inside & other).any(1)
    pair = torch.zeros_like(gap).index_put((ia, ib), clear.to(torch.int64)) > 0
    return _greedy_equals(pair, torch.nonzero(pair.any(1))[:, 0])


def _absorb(box: torch.Tensor, area: torch.Tensor, head: torch.Tensor,
            joins: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Apply [keeper, taken] merges: keepers grow, taken components point at their keeper."""
    idx = torch.arange(torch._shape_as_tensor(joins)[0])
    member = joins | (idx[:, None] == idx[None, :])
    big = torch.iinfo(torch.int64).max
    lo = torch.where(member[:, :, None], box[None, :, :2], big).amin(1)
    hi = torch.where(member[:, :, None], box[None, :, 2:], -1).amax(1)
    taken = joins.any(0)
    keeper = torch.argmax(joins.to(torch.int64), 0)
    area = torch.where(member, area[None, :], 0).sum(1)
    head = torch.where(taken, head.index_select(0, keeper), head)
    return torch.cat([lo, hi], 1), area, head, ~taken


def _axis_weights(start: torch.Tensor, size: torch.Tensor, out: torch.Tensor,
                  offset: torch.Tensor, extent: torch.Tensor) -> torch.Tensor:
    """[K, SIZE, extent] float64: Pillow's BILINEAR taps from image pixels to crop pixels
    (recognizer._bilinear_weights, placed at the crop's offset, zero elsewhere)."""
    scale = (size.to(_F64) / out.to(_F64))[:, None, None]
    support = torch.clamp(scale, min=1.0)
    o = (torch.arange(SIZE)[None, :] - offset[:, None]).to(_F64)[:, :, None]
    centers = (o + 0.5) * scale
    lo = torch.floor(torch.clamp(centers - support + 0.5, min=0.0))  # int() then max(., 0)
    hi = torch.minimum(torch.floor(centers + support + 0.5), size.to(_F64)[:, None, None])
    x = (torch.arange(extent)[None, :] - start[:, None]).to(_F64)[:, None, :]
    weights = torch.clamp(1.0 - torch.abs((x - centers + 0.5) * (1.0 / support)), min=0.0)
    used = (x >= lo) & (x < hi) & (o >= 0) & (o < out.to(_F64)[:, None, None])
    weights = torch.where(used, weights, torch.zeros_like(weights))
    total = weights.sum(2, keepdim=True)
    return torch.where(total != 0, weights / torch.where(total != 0, total, 1.0), weights)


def crops(ink: torch.Tensor, labels: torch.Tensor, box: torch.Tensor,
          head: torch.Tensor) -> torch.Tensor:
    """[K, 1, SIZE, SIZE] float32: each symbol's own ink, longer side scaled to INNER, centred;
    a horizontal pass rounded to float32, then a vertical one, as recognizer.crops_batch.

    Each symbol's window is read into a [K, tallest, widest] block (not the whole image per
    symbol), so memory grows with the symbols' sizes, not with the page's."""
    x0, y0, x1, y1 = (box[:, k] for k in range(4))
    w, h = x1 - x0, y1 - y0
    scale = INNER / torch.maximum(w, h).to(_F64)
    nw = torch.clamp(torch.round(w.to(_F64) * scale), min=1.0).to(torch.int64)
    nh = torch.clamp(torch.round(h.to(_F64) * scale), min=1.0).to(torch.int64)
    shape = torch._shape_as_tensor(ink)
    zero = torch.zeros_like(x0)
    tall, wide = torch.cat([h, zero[:1] + 1]).amax(), torch.cat([w, zero[:1] + 1]).amax()
    ys = y0[:, None] + torch.arange(tall)[None, :]  # [K, tall]
    xs = x0[:, None] + torch.arange(wide)[None, :]  # [K, wide]
    inside = (ys < y1[:, None])[:, :, None] & (xs < x1[:, None])[:, None, :]
    at = (torch.clamp(ys, max=shape[0] - 1)[:, :, None] * shape[1]
          + torch.clamp(xs, max=shape[1] - 1)[:, None, :])
    own = inside & (labels.reshape(-1)[at] == head[:, None, None])
    patches = torch.where(own, ink.reshape(-1)[at], torch.zeros_like(ink[:1, :1])).to(_F64)
    wx = _axis_weights(zero, w, nw, (SIZE - nw) // 2, wide)
    wy = _axis_weights(zero, h, nh, (SIZE - nh) // 2, tall)
    rows = torch.matmul(patches, wx.transpose(1, 2)).to(torch.float32).to(_F64)
    return torch.matmul(wy, rows).to(torch.float32)[:, None]


class DetectRecognize(nn.Module):
    """A batch of uint8 images padded to [B, H, W] and their sizes [B, 2] (height, width) ->
    boxes int64 [K, 4] (x0, y0, x1, y1 in its image), image int64 [K] (symbols image by
    image, each left to right), crops float32 [K, 1, SIZE, SIZE] and logits [K, classes].

    The images' masks are labelled as one canvas, stacked with a blank row between them (no
    8-connected component crosses it), so one op call serves the batch; each component's
    labels keep its image's raster order, and no merge joins two images' components."""

    def __init__(self, recognizer: nn.Module) -> None:
        super().__init__()
        self.recognizer = recognizer.eval()

    def forward(self, images: torch.Tensor, sizes: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        shape = torch._shape_as_tensor(images)
        height, width = shape[1], shape[2]
        valid = ((torch.arange(height)[None, :, None] < sizes[:, 0, None, None])
                 & (torch.arange(width)[None, None, :] < sizes[:, 1, None, None]))
        n = sizes[:, 0] * sizes[:, 1]
        paper = _median_paper(images, valid, n)[:, None, None]
        ink = torch.clamp((paper - images.to(torch.float32)) / paper, 0.0, 1.0)
        ink = torch.where(valid, ink, torch.zeros_like(ink))
        mask = (ink > _threshold(ink, valid, n)[:, None, None]) & valid
        blank = torch.zeros_like(ink[:, :1])
        canvas = torch.cat([ink, blank], 1).reshape(-1, width)  # [B * (H + 1), W]
        labels, stats = torch.ops.abvoc.connected_components(
            torch.cat([mask, blank > 0], 1).reshape(-1, width))
        box, area = stats[:, :4], stats[:, 4]
        image = box[:, 1] // (height + 1)
        same = image[:, None] == image[None, :]
        count = torch._shape_as_tensor(stats)[0]
        label = torch.arange(count) + 1
        box, area, head, alive = _absorb(box, area, label, _divides(box, same))
        box, area, head2, alive2 = _absorb(box, area, label, _equals(box, alive, same))
        head = head2.index_select(0, head - 1)  # a dot's line may have joined an "="
        keep = alive & alive2 & (area >= MIN_AREA)
        local_y0 = box[:, 1] - image * (height + 1)
        key = ((image * (width + 1) + box[:, 0]) * (height + 1) + local_y0) * (count + 1) + label
        key = torch.where(keep, key, torch.iinfo(torch.int64).max)
        order = torch.argsort(key)[: keep.sum()]
        lut = torch.cat([torch.zeros(1, dtype=torch.int64), head], 0)
        merged = lut.index_select(0, labels.reshape(-1).to(torch.int64)).reshape(labels.shape)
        box, image = box.index_select(0, order), image.index_select(0, order)
        x = crops(canvas, merged, box, head.index_select(0, order))
        top = image * (height + 1)  # the image's first canvas row
        box = torch.stack([box[:, 0], box[:, 1] - top, box[:, 2], box[:, 3] - top], 1)
        return box, image, x, self.recognizer(x)


# One-graph candidates: each a trained float base re-shipped as ONNX (`abvoc train <name>`).
ONEGRAPH: dict[str, dict[str, str]] = {"ocr-onegraph": {"base": "ocr-small-mixed"}}
GRAPH_FILE = "onegraph.onnx"
OUTPUTS = ("boxes", "image_index", "crops", "logits")
_EXAMPLE = np.full((24, 40), 255, dtype=np.uint8)


def export_graph(recognizer: nn.Module, aligner: nn.Module, path: Path, opset: int = 17) -> Path:
    """Write the whole pipeline as one ONNX file (image height and width and the symbol count
    dynamic): DetectRecognize over this recognizer, holding the custom-domain
    connected-component node, then the aligner (graph_aligner)."""
    from workloads.ocr import torch_ops

    torch_ops.load()
    example = np.stack([_EXAMPLE, _EXAMPLE])
    example[:, 8:16, 5:9] = 0  # a symbol each, so the export traces the crop and network path
    sizes = np.array([[24, 40], [20, 30]], dtype=np.int64)  # the second one padded
    module = DetectRecognize(copy.deepcopy(recognizer).cpu().eval())
    dims = {"images": {0: "batch", 1: "height", 2: "width"}, "sizes": {0: "batch"}}
    dims.update({name: {0: "symbols"} for name in OUTPUTS})
    with tempfile.TemporaryDirectory(prefix="abvoc-onegraph-") as scratch:
        front = Path(scratch) / "detect_recognize.onnx"
        with _export_lock, warnings.catch_warnings():
            for notice in _EXPORT_NOTICES:  # the op's symbolic needs the TorchScript exporter
                warnings.filterwarnings("ignore", message=notice, category=DeprecationWarning)
            torch.onnx.export(module, (torch.from_numpy(example), torch.from_numpy(sizes)),
                              str(front), dynamo=False, opset_version=opset,
                              input_names=["images", "sizes"], output_names=list(OUTPUTS),
                              dynamic_axes=dims, custom_opsets={ONNX_DOMAIN: 1})
        back = export_onnx("aligner", aligner, np.zeros((4, N_FEATURES), dtype=np.float32),
                           Path(scratch) / "aligner.onnx", opset=opset)
        whole = append_aligner(onnx.load(str(front)), onnx.load(str(back)))
    onnx.save(whole, str(path))
    return path


def make_candidate(name: str, base_folder: str | Path, models_dir: str | Path) -> dict[str, Any]:
    """A trained float candidate re-shipped as one ONNX graph (detector, recognizer and
    aligner), as a bundle served by ONNX Runtime with the op library."""
    if name not in ONEGRAPH:
        raise KeyError(f"unknown one-graph candidate {name!r}; known: {', '.join(ONEGRAPH)}")
    base = Pipeline.load(base_folder)
    if base.ships_onnx:
        raise ValueError(f"{base_folder} ships ONNX files already; start from a float candidate")
    folder = Path(models_dir) / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "aligner.onnx").unlink(missing_ok=True)  # the aligner's own file, before it was in
    export_graph(base.recognizer, base.aligner, folder / GRAPH_FILE)
    spec = copy.deepcopy(base.spec)
    spec.update({
        "name": name,
        "description": f"{base.spec['name']} as one ONNX graph: detector with the native "
                       "connected-component op, crops, recognizer, and the aligner with its "
                       "grouping and scan ops",
        "onnx": {"onegraph": GRAPH_FILE},
        "onegraph": True,
        "derived_from": {"name": base.spec["name"], "version": base.spec["version"]},
    })
    (folder / SPEC_FILE).write_text(json.dumps(spec, indent=2, sort_keys=True))
    version = write_bundle(folder, spec, backend="onnxruntime")
    return {"name": name, "version": version, "artifacts": str(folder),
            "size_mb": round(network_bytes(folder) / 2**20, 4),
            "validation": base.spec.get("validation", {})}
