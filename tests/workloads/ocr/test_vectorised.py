"""The vectorised per-image stages give what the straightforward per-symbol code gave.

The reference implementations below are the pipeline's former code, kept here on purpose: a
Pillow image per symbol crop, `np.isin` per detected component, one `pair_features` call per
element pair. The served pipeline must agree with them stage by stage and in its LaTeX.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from workloads.ocr import detector, pipeline
from workloads.ocr.aligner import Region, all_pair_features, group, pair_features
from workloads.ocr.dataset import OFFLINE_MIX, ONLINE_MIX, generate
from workloads.ocr.detector import Detection, detect, ink_of
from workloads.ocr.formulas import Frac, Sym
from workloads.ocr.pipeline import Pipeline
from workloads.ocr.recognizer import INNER, SIZE, crop_tensor, crops_batch
from workloads.ocr.render import render


def reference_detect(image: np.ndarray) -> Detection:
    """The detector as it was: scipy's per-label sums and one `np.isin` mask per symbol."""
    ink = ink_of(image)
    threshold = max(0.25, detector.INK_THRESHOLD * float(np.percentile(ink, 99.5)))
    labels, n = ndimage.label(ink > threshold, structure=np.ones((3, 3), dtype=bool))
    if n == 0:
        return Detection([], [])
    areas = ndimage.sum_labels(np.ones_like(labels), labels, index=np.arange(1, n + 1))
    comps = []
    for k, sl in enumerate(ndimage.find_objects(labels)):
        ys, xs = sl
        comps.append(detector._Comp([k + 1], xs.start, ys.start, xs.stop, ys.stop,
                                    int(areas[k])))
    comps = detector._merge_equals(detector._merge_divides(comps))
    comps = [c for c in comps if c.area >= detector.MIN_AREA]
    comps.sort(key=lambda c: (c.x0, c.y0))
    boxes, patches = [], []
    for c in comps:
        mask = np.isin(labels[c.y0:c.y1, c.x0:c.x1], c.labels)
        patches.append(np.where(mask, ink[c.y0:c.y1, c.x0:c.x1], 0.0).astype(np.float32))
        boxes.append((c.x0, c.y0, c.x1, c.y1))
    return Detection(boxes, patches)


def reference_crop(patch: np.ndarray) -> np.ndarray:
    """A symbol crop through a Pillow image, as it was."""
    h, w = patch.shape
    scale = INNER / max(h, w)
    nw, nh = max(int(round(w * scale)), 1), max(int(round(h * scale)), 1)
    img = Image.fromarray(patch.astype(np.float32), mode="F").resize((nw, nh), Image.BILINEAR)
    out = np.zeros((SIZE, SIZE), dtype=np.float32)
    y, x = (SIZE - nh) // 2, (SIZE - nw) // 2
    out[y: y + nh, x: x + nw] = np.asarray(img)
    return out


def reference_crops_batch(patches: list[np.ndarray]) -> np.ndarray:
    if not patches:
        return np.zeros((0, 1, SIZE, SIZE), dtype=np.float32)
    return np.stack([reference_crop(p) for p in patches])[:, None]


def reference_pair_rows(region: Region, classes: list[str], rows: list[np.ndarray],
                        start: int = 0) -> int:
    """One `pair_features` call per ordered pair, rows numbered as they are appended."""
    els = region.elements
    for i in range(len(els)):
        for j in range(i + 1, len(els)):
            region.pair_rows[(i, j)] = start
            rows.append(pair_features(els[i], els[j], region.scale, classes)[None])
            start += 1
        for part in els[i].parts.values():
            start = reference_pair_rows(part, classes, rows, start)
    return start


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    """200 offline-test images and 100 online-traffic ones (noisier, more handwriting)."""
    return ([s.image for s in generate(200, OFFLINE_MIX, 0, "offline-test")]
            + [s.image for s in generate(100, ONLINE_MIX, 0, "online")])


def test_detector_matches_the_per_component_reference(images: list[np.ndarray]) -> None:
    # "÷" and "=" are symbols of several strokes: their masks join labels.
    tree = [Sym("8"), Sym("\\div"), Sym("4"), Sym("="), Frac([Sym("1")], [Sym("2")])]
    strokes = render(tree, "printed", np.random.default_rng(0)).image
    for image in [strokes, np.full((32, 40), 255, dtype=np.uint8), *images]:
        new, ref = detect(image), reference_detect(image)
        assert new.boxes == ref.boxes
        for a, b in zip(new.patches, ref.patches, strict=True):
            assert a.dtype == b.dtype == np.float32
            np.testing.assert_array_equal(a, b)


def test_crops_match_pillow_to_the_last_bit_or_one_ulp(images: list[np.ndarray]) -> None:
    """Same Pillow coefficients; a matrix product sums the taps in another order than Pillow's
    loop, so a rare pixel differs in its last float32 bit (a relative 6e-8), never more."""
    patches = [p for image in images[:120] for p in detect(image).patches]
    new, ref = crops_batch(patches), reference_crops_batch(patches)
    assert new.shape == ref.shape and new.dtype == np.float32
    np.testing.assert_allclose(new, ref, rtol=0, atol=1.2e-7)
    assert np.mean(new == ref) > 0.999
    np.testing.assert_array_equal(crop_tensor(patches[0]), new[0, 0])
    assert crops_batch([]).shape == (0, 1, SIZE, SIZE)


def test_pair_features_match_one_call_per_pair(images: list[np.ndarray]) -> None:
    pairs = 0
    for image in images[:150]:
        det = detect(image)
        classes = ["x", "-", "\\sqrt", "2", "+"] * (len(det.boxes) // 5 + 1)
        classes = classes[: len(det.boxes)]
        new_rows: list[np.ndarray] = []
        ref_rows: list[np.ndarray] = []
        new_region = group(list(range(len(classes))), det.boxes, classes)
        ref_region = group(list(range(len(classes))), det.boxes, classes)
        n_new = all_pair_features(new_region, classes, new_rows)
        n_ref = reference_pair_rows(ref_region, classes, ref_rows)
        assert n_new == n_ref
        if n_ref:
            np.testing.assert_array_equal(np.concatenate(new_rows), np.concatenate(ref_rows))
        pairs += n_ref
    assert pairs > 1000


def test_latex_of_200_offline_images_is_unchanged(tiny_candidate: Path,
                                                  images: list[np.ndarray],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    pipe = Pipeline.load(tiny_candidate)
    offline = images[:200]
    new = pipe.predict(offline)
    singles = [pipe.predict_one(image) for image in offline[:40]]
    monkeypatch.setattr(pipeline, "detect", reference_detect)
    monkeypatch.setattr(pipeline, "crops_batch", reference_crops_batch)
    monkeypatch.setattr(pipeline, "all_pair_features", reference_pair_rows)
    ref = pipe.predict(offline)
    assert [r.latex for r in new] == [r.latex for r in ref]
    assert [r.stages["aligner"] for r in new] == [r.stages["aligner"] for r in ref]
    np.testing.assert_allclose([r.confidence for r in new], [r.confidence for r in ref],
                               rtol=1e-5, atol=1e-6)
    assert [r.latex for r in singles] == [r.latex for r in ref[:40]]


def test_fast_max_pool_equals_torch_max_pool_bit_for_bit() -> None:
    import torch

    from workloads.ocr.recognizer import MaxPool2x2

    gen = torch.Generator().manual_seed(0)
    fast, slow = MaxPool2x2(), torch.nn.MaxPool2d(2)
    for shape in [(5, 8, 32, 32), (1, 16, 16, 16), (3, 4, 7, 9), (2, 3, 6, 6)]:
        x = torch.randn(shape, generator=gen)
        with torch.inference_mode():
            assert torch.equal(fast(x), slow(x))
            assert torch.equal(fast(x.transpose(2, 3)), slow(x.transpose(2, 3)))
    ties = torch.zeros((1, 1, 4, 4), requires_grad=True)  # training keeps torch's gradients
    fast(ties).sum().backward()
    assert ties.grad is not None and ties.grad.sum().item() == 4.0
