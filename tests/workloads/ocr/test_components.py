"""The native connected-component op gives exactly scipy's labels, boxes and areas.

Checked on the ink mask of every image of the offline test (the detector's real input) and on
random masks from hypothesis, and end to end: the detector's output is the same either way.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tests.workloads.ocr.ccl_cases import assert_like_scipy, masks
from workloads.ocr import components, detector
from workloads.ocr.components import label_batch_native, label_native, label_scipy
from workloads.ocr.dataset import OFFLINE_MIX, generate
from workloads.ocr.detector import percentile
from workloads.ocr.offline import DEFAULT_TEST_SIZE

BUILD_HINT = "the native op is not built: run `pip install -e .` or `python setup.py build_ext -i`"


@pytest.fixture(scope="module", autouse=True)
def _native_is_built() -> None:
    assert components.NATIVE, BUILD_HINT


@pytest.fixture(scope="module")
def offline_images() -> list[np.ndarray]:
    return [s.image for s in generate(DEFAULT_TEST_SIZE, OFFLINE_MIX, 0, "offline-test")]


def assert_same(mask: np.ndarray) -> None:
    assert_like_scipy(*label_native(mask), mask)


def test_every_offline_test_mask_labels_as_scipy_does(offline_images: list[np.ndarray]) -> None:
    assert len(offline_images) == DEFAULT_TEST_SIZE
    for image in offline_images:
        assert_same(detector.ink_mask(detector.ink_of(image)))


def test_the_detector_gives_the_same_detections_with_either_op(
        offline_images: list[np.ndarray], monkeypatch: pytest.MonkeyPatch) -> None:
    native = [detector.detect(image) for image in offline_images]
    monkeypatch.setattr(components, "NATIVE", False)
    for image, det in zip(offline_images, native, strict=True):
        ref = detector.detect(image)
        assert det.boxes == ref.boxes
        for p, q in zip(det.patches, ref.patches, strict=True):
            np.testing.assert_array_equal(p, q)


@settings(max_examples=300, deadline=None)
@given(masks)
def test_random_masks_label_as_scipy_does(mask: np.ndarray) -> None:
    assert_same(mask)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 64), st.integers(1, 64), st.floats(0.05, 0.95), st.integers(0, 2**32 - 1))
def test_dense_and_sparse_random_masks_label_as_scipy_does(h: int, w: int, p: float,
                                                            seed: int) -> None:
    assert_same(np.random.default_rng(seed).random((h, w)) < p)


def test_uint8_masks_and_non_contiguous_views_are_accepted() -> None:
    mask = np.random.default_rng(1).random((50, 60)) < 0.4
    assert_same(mask.astype(np.uint8) * 255)
    assert_same(mask[::2, ::3])


def test_a_batch_spread_over_threads_equals_one_image_at_a_time() -> None:
    batch = np.random.default_rng(2).random((6, 80, 90)) < 0.45
    labels, stats = label_batch_native(batch, threads=3)
    for i in range(len(batch)):
        ref_labels, ref_stats = label_scipy(batch[i])
        np.testing.assert_array_equal(labels[i], ref_labels)
        np.testing.assert_array_equal(stats[i], ref_stats)


def test_an_empty_mask_has_no_components() -> None:
    labels, stats = label_native(np.zeros((5, 7), dtype=bool))
    assert stats.shape == (0, 5) and not labels.any()
    with pytest.raises(ValueError, match="2 dimensions"):
        label_native(np.zeros(5, dtype=bool))


@settings(max_examples=400, deadline=None)
@given(values=hnp.arrays(np.float32, st.integers(1, 3000),
                         elements=st.floats(0, 1, width=32)),
       q=st.sampled_from([0.0, 50.0, 99.5, 100.0, 37.3]))
def test_the_detectors_percentile_is_numpys_bit_for_bit(values: np.ndarray, q: float) -> None:
    assert percentile(values, q) == float(np.percentile(values, q))
