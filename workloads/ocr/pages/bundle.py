"""Build the two extraction candidates as ordinary image pipeline bundles, and register them.

`pages-xycut` tunes its gaps on the validation pages; `pages-fcn` trains its map network on the
training pages and picks its decoding threshold by mAP on the validation pages. Each folder gets a
`candidate.toml` (output type `json` with the boxes' JSON Schema, requirements: p99 time per page
and the recall to reach), a one-line entry module and its files; the version is the spec's
version plus a digest of those files, as for the OCR bundles.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import tomli_w
import torch

from core.page_boxes import BOXES_SCHEMA
from serving.bundles import MANIFEST_NAME
from workloads.ocr.pages.algorithmic import tune
from workloads.ocr.pages.clean import binarize, darkness
from workloads.ocr.pages.detector import decode, net_input, target, train_detector
from workloads.ocr.pages.generator import TRAIN_PAGE_MIX, generate_pages
from workloads.ocr.pages.metrics import evaluate_boxes

Say = Callable[[str], None]
SPEC_VERSION = "1"
EXTRACTORS: dict[str, dict[str, Any]] = {
    "pages-xycut": {
        "description": "recursive XY-cut of the cleaned ink (projection profiles), gaps tuned "
                       "on validation pages; drops problem numbers by shape and place",
        "factory": "open_xycut",
        "requirements": {"p99_ms": 150.0, "target_recall": 0.95, "hardware": "cpu",
                         "serving_method": "dynamic-batching"},
    },
    "pages-fcn": {
        "description": "tiny fully convolutional formula map (torch), boxes from its regions "
                       "snapped to the ink",
        "factory": "open_map",
        "requirements": {"p99_ms": 150.0, "target_recall": 0.95, "hardware": "cpu",
                         "serving_method": "dynamic-batching", "model_size_mb": 1.0},
    },
}
BATCHING = {"max_batch_size": 8, "max_batch_time_ms": 5.0}
DEFAULTS = {"n_train": 96, "n_validation": 24, "epochs": 20, "width": 12}
_FILES = ("params.json", "formula_map.pt")


def write_bundle(folder: Path, name: str, backend: str = "torch") -> str:
    """Add the manifest and entry module to a folder holding the candidate's files."""
    spec = EXTRACTORS[name]
    digest = hashlib.sha256()
    for file in _FILES:
        if (folder / file).is_file():
            digest.update((folder / file).read_bytes())
    version = f"{SPEC_VERSION}+{digest.hexdigest()[:10]}"
    (folder / "pages_entry.py").write_text(
        '"""The extraction bundle\'s pipeline factory: the reference workload\'s loader."""\n\n'
        f"from workloads.ocr.pages.served import {spec['factory']}\n\n"
        f'__all__ = ["{spec["factory"]}"]\n')
    manifest = {
        "name": name, "version": version, "description": spec["description"],
        "backend": backend,
        "inputs": [{"name": "image", "datatype": "UINT8", "shape": [-1, -1]}],
        "output": {"type": "json", "schema": BOXES_SCHEMA},
        "stages": [{"name": "extract", "kind": "pipeline",
                    "callable": f"pages_entry:{spec['factory']}"}],
        "batching": BATCHING,
        "requirements": spec["requirements"],
    }
    (folder / MANIFEST_NAME).write_text(tomli_w.dumps(manifest))
    return version


def _best_threshold(prob: np.ndarray, binaries: list[np.ndarray], truths: list) -> float:
    """The map threshold with the best mAP on the validation pages (the offline headline)."""
    best, best_score = 0.5, -np.inf
    for threshold in (0.5, 0.6, 0.7, 0.8):
        found = [decode(p, b, threshold) for p, b in zip(prob, binaries, strict=True)]
        score = evaluate_boxes(truths, found).map or 0.0
        if score > best_score:
            best, best_score = threshold, score
    return best


def build_extractors(models_dir: Path, n_train: int = DEFAULTS["n_train"],
                     n_validation: int = DEFAULTS["n_validation"],
                     epochs: int = DEFAULTS["epochs"], width: int = DEFAULTS["width"],
                     seed: int = 0, progress: Say | None = None) -> list[dict[str, Any]]:
    """Tune the XY-cut, train the map network, and write both bundles under models_dir."""
    say = progress or (lambda _m: None)
    started = time.perf_counter()
    train = generate_pages(n_train, TRAIN_PAGE_MIX, seed, "train")
    val = generate_pages(n_validation, TRAIN_PAGE_MIX, seed, "validation")
    say(f"generated {n_train} training and {n_validation} validation pages "
        f"in {time.perf_counter() - started:.1f} s")
    val_bin = [binarize(p.image) for p in val]
    val_truth = [p.boxes for p in val]
    out = []

    folder = Path(models_dir) / "pages-xycut"
    folder.mkdir(parents=True, exist_ok=True)
    params = tune(val_bin, val_truth)
    (folder / "params.json").write_text(json.dumps(params.as_dict(), indent=1))
    version = write_bundle(folder, "pages-xycut")
    say(f"[pages-xycut] tuned {params.as_dict()} -> {folder} v{version}")
    out.append({"name": "pages-xycut", "version": version, "artifacts": str(folder),
                "params": params.as_dict()})

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a shared CPU: more threads only wait on each other
    try:
        x = np.stack([net_input(darkness(p.image)) for p in train])
        y = np.stack([target(p.boxes) for p in train])
        t0 = time.perf_counter()
        net = train_detector(x, y, epochs=epochs, seed=seed, width=width,
                             progress=lambda m: say(f"[pages-fcn] {m}"))
        seconds = time.perf_counter() - t0
        with torch.inference_mode():
            xv = torch.from_numpy(np.stack([net_input(darkness(p.image)) for p in val]))
            prob = torch.sigmoid(net(xv)).numpy()[:, 0]
    finally:
        torch.set_num_threads(threads)
    threshold = _best_threshold(prob, val_bin, val_truth)
    folder = Path(models_dir) / "pages-fcn"
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), folder / "formula_map.pt")
    # Only what the weights came from: a time in here would make every retraining a new version.
    config = {"width": width, "threshold": threshold, "epochs": epochs, "n_train": n_train,
              "seed": seed}
    (folder / "params.json").write_text(json.dumps(config, indent=1))
    version = write_bundle(folder, "pages-fcn")
    say(f"[pages-fcn] trained in {seconds:.1f} s, threshold {threshold} -> {folder} v{version}")
    out.append({"name": "pages-fcn", "version": version, "artifacts": str(folder),
                "params": config, "train_seconds": round(seconds, 1)})
    return out
