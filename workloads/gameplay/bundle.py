"""A trained policy as an ordinary `label` bundle: `model.onnx` (state -> logits), `post.py`
(logits -> action label and confidence) and a `candidate.toml` naming both, as any team would
write it. The version is `1+` a digest of the ONNX file, so retraining on other data is a new
version and writing the same network twice gives the same one.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tomli_w

from core.errors import AbvocError
from serving.bundles import MANIFEST_NAME, BundleRunner, load_manifest
from workloads.gameplay.features import FEATURE_NAMES, FEATURES
from workloads.gameplay.game import ACTIONS
from workloads.gameplay.logs import INPUT_NAME
from workloads.gameplay.matches import BatchBot
from workloads.gameplay.training import PolicyNet, export_onnx

POST_SOURCE = Path(__file__).with_name("post.py")
# JSON strings are TOML basic strings, so json.dumps quotes the values.
MANIFEST_TEMPLATE = """\
# A gameplay policy bundle written by `abvoc workloads gameplay build`.
name = {name}
version = {version}
description = {description}
backend = "onnxruntime"

[[inputs]]
# columns: {columns}
name = {input}
datatype = "FP32"
shape = [-1, {features}]

[output]
type = "label"
classes = {classes}

[[stages]]
name = "policy"
kind = "onnx"
path = {model}

[[stages]]
name = "to_action"
kind = "python"
callable = "post:to_action"

[batching]
max_batch_size = 64
max_batch_time_ms = 2

[requirements]
{requirements}"""
REQUIREMENTS = {"p99_ms": 20, "target_accuracy": 0.95, "model_size_mb": 1,
                "serving_method": "dynamic-batching", "hardware": "cpu"}


@dataclass(frozen=True)
class BundleSpec:
    name: str
    description: str
    spec_version: str = "1"
    requirements: dict[str, Any] = field(default_factory=lambda: dict(REQUIREMENTS))


def write_bundle(net: PolicyNet, folder: Path, spec: BundleSpec) -> str:
    """Export `net` and write the bundle's files into `folder`; returns the bundle version."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = export_onnx(net, folder / "model.onnx")
    version = f"{spec.spec_version}+{hashlib.sha256(model.read_bytes()).hexdigest()[:10]}"
    shutil.copyfile(POST_SOURCE, folder / "post.py")
    text = MANIFEST_TEMPLATE.format(
        columns=", ".join(FEATURE_NAMES), name=json.dumps(spec.name),
        version=json.dumps(version), description=json.dumps(spec.description),
        input=json.dumps(INPUT_NAME), features=FEATURES, classes=json.dumps(list(ACTIONS)),
        model=json.dumps(model.name), requirements=tomli_w.dumps(spec.requirements))
    (folder / MANIFEST_NAME).write_text(text, encoding="utf-8")
    return version


@contextmanager
def bundle_bot(folder: Path) -> Iterator[BatchBot]:
    """The bundle's stages (ONNX, then post) as a batched bot for `play_matches`, without the
    batcher's wait: the actions for a batch of states. A bundle that is not a game policy is
    refused before anything loads, saying what a policy takes and answers."""
    manifest = load_manifest(Path(folder))
    if [t.name for t in manifest.inputs] != [INPUT_NAME] or manifest.output.type != "label" \
            or tuple(manifest.output.classes or ()) != tuple(ACTIONS):
        raise AbvocError(f"{folder} holds candidate {manifest.name!r}, not a game policy: a "
                         f"policy takes {INPUT_NAME!r} and answers one of {list(ACTIONS)}; "
                         "play a bundle `abvoc workloads gameplay build` made")
    runner = BundleRunner.open(Path(folder))
    try:
        def bot(states: np.ndarray) -> list[str]:
            out = runner.run_stages(runner.check_inputs({INPUT_NAME: states}))
            return [str(label) for label in out["label"]]

        yield bot
    finally:
        runner.close()
