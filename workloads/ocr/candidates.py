"""The candidate pipelines a team would compare, and how `abvoc train` builds them.

Three candidates differ the way real ones do: a small fast recognizer trained on printed
formulas only (the data that was easy to get), the same network trained on a mixed set, and a
larger network on the mixed set. The detector and converter are shared algorithms; the
recognizer and aligner are trained per candidate on that candidate's training data.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workloads.ocr.aligner import relation_examples
from workloads.ocr.bundle import write_bundle
from workloads.ocr.dataset import BALANCED_MIX, PRINTED_ONLY_MIX, Mix, Sample, generate
from workloads.ocr.pipeline import Pipeline
from workloads.ocr.recognizer import (
    CropSet,
    accuracy,
    crop_set,
    train_classifier,
    train_recognizer,
)

VERSION = "1"
DETECTOR = "connected components of ink; '=' and '÷' strokes merged by geometry; specks dropped"
CONVERTER = "tree walk over relations to canonical LaTeX"

CANDIDATES: dict[str, dict[str, Any]] = {
    "ocr-small-printed": {
        "description": "small fast CNN recognizer trained on printed formulas only",
        "recognizer": {"channels": [8, 16], "hidden": 64, "dropout": 0.0, "epochs": 6},
        "train_mix": "printed-only",
        "requirements": {"p99_ms": 25.0, "target_accuracy": 0.75, "target_qps": 200.0,
                         "model_size_mb": 1.0, "serving_method": "dynamic-batching",
                         "hardware": "cpu"},
    },
    "ocr-small-mixed": {
        "description": "the same small CNN trained on printed and handwritten formulas",
        "recognizer": {"channels": [8, 16], "hidden": 64, "dropout": 0.0, "epochs": 6},
        "train_mix": "balanced",
        "requirements": {"p99_ms": 25.0, "target_accuracy": 0.75, "target_qps": 200.0,
                         "model_size_mb": 1.0, "serving_method": "dynamic-batching",
                         "hardware": "cpu"},
    },
    "ocr-large-mixed": {
        "description": "larger three-stage CNN with dropout, mixed training data",
        "recognizer": {"channels": [16, 32, 64], "hidden": 128, "dropout": 0.2, "epochs": 8},
        "train_mix": "balanced",
        "requirements": {"p99_ms": 40.0, "target_accuracy": 0.8, "target_qps": 100.0,
                         "model_size_mb": 4.0, "serving_method": "dynamic-batching",
                         "hardware": "gpu"},
    },
}
MIXES: dict[str, Mix] = {"printed-only": PRINTED_ONLY_MIX, "balanced": BALANCED_MIX}
DEFAULT_TRAIN = 1500
DEFAULT_VALIDATION = 200
ALIGNER = {"hidden": 64, "epochs": 30}


def candidate_names() -> list[str]:
    return list(CANDIDATES)


def spec_for(name: str, n_train: int = DEFAULT_TRAIN, epochs: int | None = None,
             seed: int = 0) -> dict[str, Any]:
    """The full, JSON-able description of a candidate as it will be trained."""
    if name not in CANDIDATES:
        raise KeyError(f"unknown candidate {name!r}; known: {', '.join(CANDIDATES)}")
    base = copy.deepcopy(CANDIDATES[name])
    rec = base["recognizer"]
    if epochs is not None:
        rec["epochs"] = epochs
    return {
        "name": name,
        "version": VERSION,
        "description": base["description"],
        "recognizer": {"arch": "SymbolCNN", "input": [1, 32, 32], **rec},
        "aligner": {"arch": "RelationMLP", **ALIGNER},
        "detector": DETECTOR,
        "converter": CONVERTER,
        "training": {"mix": base["train_mix"], "mix_weights": MIXES[base["train_mix"]].as_dict(),
                     "n_train": n_train, "n_validation": DEFAULT_VALIDATION, "seed": seed},
        "requirements": base["requirements"],
    }


@lru_cache(maxsize=8)
def _samples(n: int, mix: Mix, seed: int, split: str) -> tuple[Sample, ...]:
    return tuple(generate(n, mix, seed, split))


@lru_cache(maxsize=8)
def _crops(n: int, mix: Mix, seed: int, split: str) -> CropSet:
    return crop_set(_samples(n, mix, seed, split))


def validation_data(spec: dict[str, Any]) -> tuple[CropSet, np.ndarray, np.ndarray]:
    """The validation split a candidate is scored on, from its spec's mix and seed: the symbol
    crops (x, y) for the recognizer, and the relation pairs and their labels for the aligner."""
    training = spec["training"]
    mix, seed = MIXES[training["mix"]], int(training["seed"])
    n = int(training.get("n_validation", DEFAULT_VALIDATION))
    xv, yv = relation_examples(_samples(n, mix, seed, "validation"))
    return _crops(n, mix, seed, "validation"), xv, yv


def train_candidate(name: str, models_dir: str | Path, n_train: int = DEFAULT_TRAIN,
                    epochs: int | None = None, seed: int = 0,
                    progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train one candidate's recognizer and aligner and save them under models_dir/name."""
    say = progress or (lambda _msg: None)
    spec = spec_for(name, n_train, epochs, seed)
    mix = MIXES[spec["training"]["mix"]]
    torch.manual_seed(seed)
    pipe = Pipeline.build(spec)
    say(f"[{name}] generating {n_train} training formulas ({spec['training']['mix']})")
    train = _crops(n_train, mix, seed, "train")
    val, xv, yv = validation_data(spec)
    say(f"[{name}] recognizer: {len(train.y)} symbol crops, {spec['recognizer']['epochs']} epochs")
    train_recognizer(pipe.recognizer, train, spec["recognizer"]["epochs"], seed,
                     progress=lambda m: say(f"[{name}] recognizer {m}"))
    with torch.inference_mode():
        val_logits = pipe.recognizer(torch.from_numpy(val.x)).numpy()
    rec_acc = accuracy(val_logits, val.y)
    say(f"[{name}] recognizer validation accuracy {rec_acc:.3f}")
    x, y = relation_examples(_samples(n_train, mix, seed, "train"))
    say(f"[{name}] aligner: {len(y)} symbol pairs, {ALIGNER['epochs']} epochs")
    train_classifier(pipe.aligner, x, y, ALIGNER["epochs"], lr=3e-3, batch_size=256, seed=seed,
                     progress=_every(5, lambda m: say(f"[{name}] aligner {m}")))
    with torch.inference_mode():
        al_acc = accuracy(pipe.aligner(torch.from_numpy(xv)).numpy(), yv)
    say(f"[{name}] aligner validation accuracy {al_acc:.3f}")
    spec["validation"] = {"recognizer_accuracy": round(rec_acc, 4),
                          "aligner_accuracy": round(al_acc, 4)}
    folder = Path(models_dir) / name
    pipe.spec = spec
    pipe.save(folder)
    version = write_bundle(folder, spec)
    say(f"[{name}] saved to {folder} as bundle version {version}")
    return {"name": name, "version": version, "artifacts": str(folder),
            "validation": spec["validation"], "parameters": pipe.parameter_count()}


def _every(n: int, fn: Callable[[str], None]) -> Callable[[str], None]:
    count = {"i": 0}

    def call(msg: str) -> None:
        count["i"] += 1
        if count["i"] % n == 0:
            fn(msg)
    return call


__all__ = ["CANDIDATES", "candidate_names", "spec_for", "train_candidate"]
