"""Image pipeline bundles: a bundle's "pipeline" stage builds a team's whole image pipeline,
serving loads its networks on the manifest's backend and batches whole requests, and
registration refuses a pipeline that is not one, naming what to fix."""

from __future__ import annotations

import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from serving.backends import get_backend
from serving.bundles import ManifestError, register_bundle, validate_bundle
from serving.pipelines import ImageCandidate
from serving.registry import Registry
from tests.support.bundles import refused
from tests.support.flow import joined

# A tiny image pipeline: the mean ink of a fixed 8x8 thumbnail, through a linear network.
ENTRY = '''
import numpy as np
import torch
from serving.servable import Answer


class Brightness:
    def __init__(self, runner=None):
        self.net = torch.nn.Linear(64, 1, bias=False)
        with torch.no_grad():
            self.net.weight.fill_(1.0 / 64)
        self.runner = runner

    def networks(self):
        return {"mean": (self.net, np.zeros((2, 64), np.float32))}

    def with_runner(self, runner):
        out = Brightness(runner)
        out.net = self.net
        return out

    def predict(self, images):
        thumbs = np.stack([img[:8, :8].reshape(64) for img in images]).astype(np.float32)
        means = self.runner.run("mean", thumbs)[:, 0]
        return [Answer(float(m), "number", None, {"thumb": [8, 8]}) for m in means]


def open_pipeline(folder):
    return Brightness()
'''
MANIFEST = '''
name = "brightness"
version = "1"
backend = "{backend}"
[[inputs]]
name = "image"
datatype = "UINT8"
shape = [-1, -1]
[output]
type = "number"
[[stages]]
name = "pipeline"
kind = "pipeline"
callable = "entry:open_pipeline"
[batching]
max_batch_size = 8
max_batch_time_ms = 5
'''


def pipeline_bundle(root: Path, backend: str = "torch", manifest: str = MANIFEST,
                    entry: str = ENTRY) -> Path:
    folder = root / "brightness"
    folder.mkdir(parents=True)
    (folder / "candidate.toml").write_text(textwrap.dedent(manifest).format(backend=backend))
    (folder / "entry.py").write_text(entry)
    return folder


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_served_on_the_manifests_backend_and_batched(tmp_path: Path, backend: str) -> None:
    manifest, stages = validate_bundle(pipeline_bundle(tmp_path, backend))
    assert manifest.takes_images and manifest.describe()["takes"] == "image"
    candidate = ImageCandidate(manifest, stages[0].pipeline, get_backend(backend))
    images = [np.full((10, 12), v, np.uint8) for v in (0, 64, 128, 255)]
    answers: dict[int, float] = {}

    def ask(i: int) -> None:
        answers[i] = candidate.predict(images[i]).output

    threads = [threading.Thread(target=ask, args=(i,), daemon=True) for i in range(len(images))]
    for t in threads:
        t.start()
    joined(threads, 60)
    candidate.close()
    assert [round(answers[i], 3) for i in range(4)] == [0.0, 64.0, 128.0, 255.0]


def test_a_bad_image_fails_alone_with_a_400(tmp_path: Path) -> None:
    manifest, stages = validate_bundle(pipeline_bundle(tmp_path))
    candidate = ImageCandidate(manifest, stages[0].pipeline, get_backend("torch"))
    try:
        with pytest.raises(Exception, match="must have 2 dimensions") as info:
            candidate.predict(np.zeros((4, 4, 3), np.uint8))
        assert info.value.status == 400
        with pytest.raises(Exception, match="must be UINT8"):
            candidate.predict(np.zeros((8, 8), np.float32))
        assert candidate.predict(np.full((8, 8), 2, np.uint8)).output == pytest.approx(2.0)
    finally:
        candidate.close()


@pytest.mark.parametrize(("manifest_edit", "entry", "fragment"), [
    (("[batching]", '[[stages]]\nname = "post"\nkind = "python"\ncallable = "entry:x"\n'
      "[batching]"), ENTRY, "'pipeline' stage is the bundle's only stage"),
    (('datatype = "UINT8"', 'datatype = "BYTES"'), ENTRY, "takes one image"),
    (None, ENTRY.replace("def predict", "def guess"), r"without \['predict'\]"),
    (None, ENTRY.replace("return Brightness()", "raise OSError('weights.pt missing')"),
     "open_pipeline\\(folder\\) failed: OSError: weights.pt missing"),
    (None, ENTRY.replace("def open_pipeline", "def open_other"), "has no function"),
])
def test_refusals_name_what_to_fix(tmp_path: Path, registry: Registry, models: Path,
                                   manifest_edit: tuple[str, str] | None, entry: str,
                                   fragment: str) -> None:
    manifest = MANIFEST if manifest_edit is None else MANIFEST.replace(*manifest_edit)
    source = pipeline_bundle(tmp_path, manifest=manifest, entry=entry)
    refused(registry, models, source, fragment)


def test_registered_and_run_by_the_pool(tmp_path: Path, registry: Registry,
                                        models: Path) -> None:
    from serving.pool import CandidatePool

    info = register_bundle(registry, models, pipeline_bundle(tmp_path))
    assert info.pipeline["takes"] == "image"
    pool = CandidatePool(registry, models)
    try:
        candidate = pool.get("brightness")
        assert candidate.accepts == "image"
        assert candidate.predict(np.full((9, 9), 10, np.uint8)).output == pytest.approx(10.0)
    finally:
        pool.close()
    with pytest.raises(ManifestError, match="image pipeline"):
        from serving.bundles import BundleRunner

        BundleRunner.open(Path(info.artifacts)).predict({"image": np.zeros((8, 8), np.uint8)})


NO_NETWORK = ENTRY.replace(
    'return {"mean": (self.net, np.zeros((2, 64), np.float32))}', "return {}").replace(
    'means = self.runner.run("mean", thumbs)[:, 0]', "means = thumbs.mean(axis=1)")


def test_a_pipeline_without_networks_needs_no_backend(tmp_path: Path) -> None:
    assert "return {}" in NO_NETWORK and "self.runner.run" not in NO_NETWORK
    manifest, stages = validate_bundle(pipeline_bundle(tmp_path, entry=NO_NETWORK))
    candidate = ImageCandidate(manifest, stages[0].pipeline, get_backend("torch"))
    try:
        assert candidate.predict(np.full((8, 8), 7, np.uint8)).output == pytest.approx(7.0)
    finally:
        candidate.close()


def test_offline_test_on_a_dataset_of_images(tmp_path: Path, registry: Registry,
                                             models: Path) -> None:
    import json

    from serving.bundles.offline import offline_test

    register_bundle(registry, models, pipeline_bundle(tmp_path))
    lines = []
    for i, (value, size) in enumerate([(10, (8, 8)), (200, (9, 12)), (60, (16, 10))]):
        image = np.full(size, value, np.uint8)
        if i == 2:  # as a .npy file beside the manifest
            np.save(tmp_path / "third.npy", image)
            given = "third.npy"
        else:
            given = image.tolist()
        lines.append({"inputs": {"image": given}, "label": value + 1.0,
                      "slice": "dark" if value < 100 else "bright"})
    dataset = tmp_path / "images.jsonl"
    dataset.write_text("\n".join(json.dumps(line) for line in lines))
    results = offline_test(registry, "brightness", dataset)
    assert results["overall"]["n"] == 3
    assert results["overall"]["mae"] == pytest.approx(1.0)
    assert sorted(results["slices"]) == ["bright", "dark"]
    assert registry.get("brightness").offline_results == results
