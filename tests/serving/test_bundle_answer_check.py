"""Registration refuses a bundle whose last ONNX stage gives nothing its declared output type can
be read from (serving/bundles/output_check.py): such a bundle was registered and then failed
every request as the candidate's 502. Where the answer can be read, it is registered."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.bundles import register_bundle
from serving.registry import Registry
from tests.support.bundles import edit, refused

CLASSES = 'classes = ["setosa", "versicolor", "virginica"]'


def _onnx_only(bundle: Path) -> None:
    """The example without its Python post stage: the ONNX classifier's 'probabilities'
    [-1, 3] are the last stage's outputs."""
    path = bundle / "candidate.toml"
    text = path.read_text()
    start = text.index('[[stages]]\nname = "to_label"')
    path.write_text(text[:start] + text[text.index("[batching]"):])


@pytest.mark.parametrize(("output", "needs"), [
    ('classes = ["setosa", "versicolor"]', r"2 class scores \(FP\)"),
    ('classes = ["a", "b", "c", "d"]', r"4 class scores \(FP\)"),
])
def test_class_scores_of_another_count_are_refused(registry: Registry, models: Path,
                                                   bundle: Path, output: str, needs: str) -> None:
    _onnx_only(bundle)
    edit(bundle, CLASSES, output)
    refused(registry, models, bundle,
            rf"^output.type 'label': the last stage 'classifier' gives 'probabilities' FP32 "
            rf"\[-1, 3\], from which no answer can be read \(an item's answer is one class "
            rf"name \(BYTES\), {needs} or one class index \(INT\)\)")


@pytest.mark.parametrize(("kind", "needs"), [("number", "one numeric value"),
                                             ("text", r"one string \(BYTES\)"),
                                             ("latex", r"one string \(BYTES\)")])
def test_a_score_vector_is_no_number_or_text(registry: Registry, models: Path, bundle: Path,
                                            kind: str, needs: str) -> None:
    _onnx_only(bundle)
    edit(bundle, 'type = "label"', f'type = "{kind}"')
    edit(bundle, CLASSES, "")
    refused(registry, models, bundle,
            rf"^output.type '{kind}': the last stage 'classifier' gives .*\(an item's answer "
            rf"is {needs}\)")


def test_readable_answers_are_registered(registry: Registry, models: Path, bundle: Path,
                                         tmp_path: Path) -> None:
    """Three scores for three classes; and a Python stage last, whose outputs are known only
    when it runs, is not judged here."""
    register_bundle(registry, models, bundle)
    onnx_only = tmp_path / "onnx-only"
    onnx_only.mkdir()
    for f in bundle.iterdir():
        (onnx_only / f.name).write_bytes(f.read_bytes())
    _onnx_only(onnx_only)
    edit(onnx_only, 'name = "iris-onnx"', 'name = "iris-scores"')
    register_bundle(registry, models, onnx_only)
    assert {c.name for c in registry.list()} == {"iris-onnx", "iris-scores"}
