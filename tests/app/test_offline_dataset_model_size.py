"""An image pipeline bundle tested on a dataset (`abvoc offline-test NAME --dataset`, e.g. a
relabel export) has its model size measured as the built-in offline test measures it, so its
`model_size_mb` requirement is checked, not left "not measured"."""

from __future__ import annotations

import json
from pathlib import Path

from flask import Flask

from serving.bundles.model_size import network_bytes
from serving.bundles.offline import offline_test
from serving.images import encode_png
from serving.registry import offline_checks
from workloads.ocr.dataset import OFFLINE_MIX, generate


def test_a_pipeline_bundle_on_a_dataset_has_its_size_checked(app: Flask, tmp_path: Path) -> None:
    lines = []
    for i, sample in enumerate(generate(3, OFFLINE_MIX, seed=4, split="offline-test")):
        (tmp_path / f"f{i}.png").write_bytes(encode_png(sample.image))
        lines.append(json.dumps({"inputs": {"image": {"file": f"f{i}.png"}},
                                 "label": sample.latex, "slice": sample.category}))
    dataset = tmp_path / "manifest.jsonl"
    dataset.write_text("\n".join(lines) + "\n")
    registry = app.extensions["abvoc_serving"].registry
    info = registry.get("ocr-small-mixed")
    results = offline_test(registry, "ocr-small-mixed", dataset, store=False)
    size = network_bytes(info.artifacts)  # what the built-in offline test measures
    assert size > 0 and results["model"] == {"size_bytes": size,
                                             "size_mb": round(size / 2**20, 3)}
    (check,) = [c for c in offline_checks(info.requirements, results)
                if c["requirement"] == "model_size_mb"]
    assert check["measured"] == results["model"]["size_mb"] and check["passed"] is not None
