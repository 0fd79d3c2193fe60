"""The offline test: a candidate on the offline test set, overall and for every category.

Figures: exact match, normalized token edit distance, per-stage figures (detection recall and
precision, symbol accuracy, relation accuracy, which stage first went wrong), latency p50/p99
one image at a time, throughput in batches, and model size. Everything comes from running the
pipeline; nothing is estimated.
"""

from __future__ import annotations

import os
import platform
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.latex import token_edit_distance
from core.same_answer import same_output
from serving.bundles.model_size import network_bytes
from workloads.ocr.dataset import CATEGORIES, OFFLINE_MIX, Mix, Sample, generate
from workloads.ocr.detector import match
from workloads.ocr.pipeline import Pipeline, PredictionResult

DEFAULT_TEST_SIZE = 600
STAGES = ("detector", "recognizer", "aligner", "converter")


def score(sample: Sample, result: PredictionResult) -> dict[str, Any]:
    """Per-sample figures, and the first stage that went wrong (None when the LaTeX is right)."""
    boxes = result.stages["detector"]["boxes"]
    classes = result.stages["recognizer"]["classes"]
    relations = result.stages["aligner"]["relations"]
    m = match(boxes, sample.boxes)
    n_true = len(sample.boxes)
    correct_cls = sum(classes[p] == sample.classes[t] for t, p in m.items())
    correct_rel = 0
    for t, p in m.items():
        gp, gr = sample.relations[t]
        pp, pr = relations[p][0], relations[p][1]
        same_parent = (gp < 0 and pp < 0) or (gp >= 0 and m.get(gp) == pp)
        correct_rel += int(same_parent and gr == pr)
    exact = same_output(result.latex, sample.latex, "latex")
    stage = None
    if not exact:
        if len(m) != n_true or len(boxes) != n_true:
            stage = "detector"
        elif correct_cls != n_true:
            stage = "recognizer"
        elif correct_rel != n_true:
            stage = "aligner"
        else:
            stage = "converter"
    return {"exact": exact, "ted": token_edit_distance(result.latex, sample.latex),
            "n_true": n_true, "n_pred": len(boxes), "matched": len(m),
            "correct_classes": correct_cls, "correct_relations": correct_rel,
            "error_stage": stage}


def _summary(rows: list[dict[str, Any]], latencies: list[float], seconds: float,
             confidences: list[float]) -> dict[str, Any]:
    n = len(rows)
    n_true = sum(r["n_true"] for r in rows) or 1
    matched = sum(r["matched"] for r in rows)
    stages = Counter(r["error_stage"] for r in rows if r["error_stage"])
    lat = np.asarray(latencies) * 1000.0
    return {
        "n": n,
        "exact_match": round(sum(r["exact"] for r in rows) / n, 4) if n else None,
        "token_edit_distance": round(float(np.mean([r["ted"] for r in rows])), 4) if n else None,
        "detection_recall": round(matched / n_true, 4),
        "detection_precision": round(matched / (sum(r["n_pred"] for r in rows) or 1), 4),
        "symbol_accuracy": round(sum(r["correct_classes"] for r in rows) / n_true, 4),
        "recognizer_accuracy": round(sum(r["correct_classes"] for r in rows) / (matched or 1), 4),
        "relation_accuracy": round(sum(r["correct_relations"] for r in rows) / (matched or 1), 4),
        "error_stage": {s: stages.get(s, 0) for s in STAGES},
        "mean_confidence": round(float(np.mean(confidences)), 4) if confidences else None,
        "latency_p50_ms": round(float(np.percentile(lat, 50)), 3) if len(lat) else None,
        "latency_p99_ms": round(float(np.percentile(lat, 99)), 3) if len(lat) else None,
        "throughput_ips": round(n / seconds, 1) if seconds > 0 else None,
    }


def evaluate(pipe: Pipeline, samples: Sequence[Sample], batch_size: int = 32,
             latency_samples: int = 300,
             progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the pipeline over the samples: batched for accuracy and throughput (per category),
    then one image at a time for latency."""
    by_cat: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(samples):
        by_cat[s.category].append(i)
    results: list[PredictionResult | None] = [None] * len(samples)
    seconds: dict[str, float] = {}
    if samples:  # untimed: a fresh process's first batch allocates (torch's pools) and was
        # charged to the category that ran first, which read 5 to 8 times slower than the rest
        pipe.predict([s.image for s in samples[:batch_size]])
    for cat, idx in by_cat.items():
        start = time.perf_counter()
        for b in range(0, len(idx), batch_size):
            chunk = idx[b: b + batch_size]
            for i, r in zip(chunk, pipe.predict([samples[i].image for i in chunk]), strict=True):
                results[i] = r
        seconds[cat] = time.perf_counter() - start
        if progress:
            progress(f"{cat}: {len(idx)} images in {seconds[cat]:.2f} s")
    if samples:
        pipe.predict_one(samples[0].image)  # warm-up: first calls allocate
    latencies: dict[int, float] = {}
    step = max(len(samples) // max(latency_samples, 1), 1)
    for i in range(0, len(samples), step):
        start = time.perf_counter()
        pipe.predict_one(samples[i].image)
        latencies[i] = time.perf_counter() - start
    rows = [score(s, r) for s, r in zip(samples, results, strict=True)]

    def part(idx: list[int]) -> dict[str, Any]:
        return _summary([rows[i] for i in idx], [latencies[i] for i in idx if i in latencies],
                        sum(seconds[c] for c in {samples[i].category for i in idx}),
                        [results[i].confidence for i in idx])

    out = {"overall": part(list(range(len(samples))))}
    out["slices"] = {cat: part(by_cat[cat]) for cat in CATEGORIES if cat in by_cat}
    noisy = [i for i, s in enumerate(samples) if s.noisy]
    clean = [i for i, s in enumerate(samples) if not s.noisy]
    for name, idx in (("noise/noisy", noisy), ("noise/clean", clean)):
        if idx:
            out["slices"][name] = {k: v for k, v in part(idx).items()
                                   if not k.startswith(("latency", "throughput"))}
    return out


def offline_test(candidate_dir: str | Path, n: int = DEFAULT_TEST_SIZE, seed: int = 0,
                 mix: Mix = OFFLINE_MIX, runner_factory: Callable | None = None,
                 threads: int | None = 1,
                 progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Load a trained candidate and evaluate it on the offline test split.

    `threads` sets torch's intra-op threads for this process: one per request is how a CPU
    server runs, and on a shared machine more threads only add waiting to the latency tail."""
    if threads:
        torch.set_num_threads(threads)
    pipe = Pipeline.load(candidate_dir)
    if runner_factory is not None:
        pipe = pipe.with_runner(runner_factory(pipe.networks()))
    samples = generate(n, mix, seed, "offline-test")
    results = evaluate(pipe, samples, progress=progress)
    size = network_bytes(candidate_dir)
    results["model"] = {"size_bytes": size, "size_mb": round(size / 2**20, 3),
                        "parameters": pipe.parameter_count()}
    results["overall"]["model_size_mb"] = results["model"]["size_mb"]
    results["test_set"] = {"split": "offline-test", "n": n, "seed": seed, **mix.as_dict()}
    results["environment"] = {"runner": type(pipe.runner).__name__,
                              "torch_threads": torch.get_num_threads(),
                              "cpu_count": os.cpu_count(), "machine": platform.machine()}
    return results
