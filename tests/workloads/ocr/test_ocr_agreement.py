"""A trained OCR candidate gives the same LaTeX through torch and ONNX Runtime (issue 3, item 6)."""

from __future__ import annotations

import pytest

from serving.backends import get_backend


@pytest.fixture(scope="module")
def ocr_pipeline(tmp_path_factory):
    from workloads.ocr.candidates import train_candidate
    from workloads.ocr.pipeline import Pipeline

    models = tmp_path_factory.mktemp("models")
    train_candidate("ocr-small-mixed", models, 200, 1, 0, None)  # quick: agreement, not accuracy
    return Pipeline.load(models / "ocr-small-mixed")


def test_torch_and_onnxruntime_give_the_same_latex(ocr_pipeline, tmp_path):
    from workloads.ocr.dataset import OFFLINE_MIX, generate

    images = [s.image for s in generate(200, OFFLINE_MIX, 0, "offline-test")]
    latex = {}
    for name in ("torch", "onnxruntime"):
        backend = get_backend(name)
        backend.load(ocr_pipeline.networks(), tmp_path)
        try:
            served = ocr_pipeline.with_runner(backend)
            latex[name] = [r.latex for r in served.predict(images)]
        finally:
            backend.unload()
    same = sum(a == b for a, b in zip(latex["torch"], latex["onnxruntime"], strict=True))
    assert same / len(images) >= 0.995
