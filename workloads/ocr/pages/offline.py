"""The extraction candidates' offline test: generated offline-test pages, figures by slice.

Per slice (style/level, one or two columns, noisy or clean, ruled or plain) and overall: precision
and recall at IoU 0.5 and COCO mAP over IoU 0.50:0.95 (pycocotools, see metrics.py), and — the
figure users feel — the share of the pages' formulas read exactly when each extracted box is cut
out and read by an OCR candidate (`end_to_end_exact`). Beside it, the same OCR on the true boxes
(`ocr_on_true_boxes`), so the gap between the two is what extraction costs. Latency is per page,
one page a call, through the bundle's pipeline on the named backend.
"""

from __future__ import annotations

import os
import platform
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from serving.backends import BackendSettings, get_backend
from serving.bundles import validate_bundle
from serving.pipelines import ImagePipeline
from workloads.ocr.pages.clean import binarize, clean_image, crop
from workloads.ocr.pages.generator import OFFLINE_PAGE_MIX, Page, generate_pages
from workloads.ocr.pages.metrics import evaluate_boxes

DEFAULT_PAGES = 48
TASK = "formula-extraction"
Say = Callable[[str], None]


@contextmanager
def loaded(folder: Path, backend: str | None = None,
           threads: int | None = None) -> Iterator[tuple[Any, ImagePipeline]]:
    """The bundle's pipeline running on `backend` (default: the manifest's), on the CPU."""
    manifest, stages = validate_bundle(Path(folder))
    engine = get_backend(backend or manifest.backend,
                         BackendSettings(device="cpu", intra_op_threads=threads))
    pipeline = stages[0].pipeline
    engine.load(pipeline.networks())
    try:
        yield manifest, pipeline.with_runner(engine)
    finally:
        engine.unload()


def _reads(pages: list[Page], found: list[list], matches: list[dict[int, int]],
           ocr: Any) -> tuple[list[int], list[int]]:
    """Per page: formulas read exactly from the extracted boxes, and from the true boxes."""
    got, oracle = [], []
    for page, boxes, match in zip(pages, found, matches, strict=True):
        clean = clean_image(page.image, binarize(page.image))
        pairs = sorted(match.items())
        crops = [crop(clean, boxes[p][0]) for p, _ in pairs]
        crops += [crop(clean, f.box) for f in page.formulas]
        latex = [r.latex for r in ocr.predict(crops)] if crops else []
        got.append(sum(latex[i] == page.formulas[t].latex for i, (_, t) in enumerate(pairs)))
        oracle.append(sum(latex[len(pairs) + k] == f.latex for k, f in enumerate(page.formulas)))
    return got, oracle


def _row(idx: list[int], pages: list[Page], found: list[list], latencies: list[float],
         reads: tuple[list[int], list[int]] | None) -> dict[str, Any]:
    result = evaluate_boxes([pages[i].boxes for i in idx], [found[i] for i in idx])
    lat = np.asarray([latencies[i] for i in idx]) * 1000.0
    row: dict[str, Any] = {"n": len(idx), **result.figures(),
                           "latency_p50_ms": round(float(np.percentile(lat, 50)), 2),
                           "latency_p99_ms": round(float(np.percentile(lat, 99)), 2),
                           "pages_per_s": round(len(idx) / max(float(lat.sum()) / 1000, 1e-9),
                                                2)}
    if reads is not None and result.n_truth:
        row["end_to_end_exact"] = round(sum(reads[0][i] for i in idx) / result.n_truth, 4)
        row["ocr_on_true_boxes"] = round(sum(reads[1][i] for i in idx) / result.n_truth, 4)
    return row


def offline_test_pages(folder: Path, n: int = DEFAULT_PAGES, seed: int = 0,
                       ocr_folder: Path | None = None, backend: str | None = None,
                       progress: Say | None = None, threads: int | None = 1) -> dict[str, Any]:
    """Run the extraction bundle at `folder` over the offline-test pages; figures by slice.

    `threads` sets the intra-op threads (torch's for the whole process): one a request is how
    a CPU server runs, and on a shared machine more only add waiting to the latency tail."""
    if threads:
        torch.set_num_threads(threads)
    pages = generate_pages(n, OFFLINE_PAGE_MIX, seed, "offline-test")
    found, latencies = [], []
    with loaded(folder, backend, threads) as (manifest, pipe):
        pipe.predict([pages[0].image])  # warm-up: first calls allocate
        for done, page in enumerate(pages, 1):
            start = time.perf_counter()
            answer = pipe.predict([page.image])[0]
            latencies.append(time.perf_counter() - start)
            found.append([(tuple(b["box"]), float(b["score"])) for b in answer.output])
            if progress and (done % 10 == 0 or done == len(pages)):
                progress(f"{manifest.name}: {done}/{len(pages)} pages")
    reads = None
    if ocr_folder is not None:
        from workloads.ocr.pipeline import Pipeline

        matches = evaluate_boxes([p.boxes for p in pages], found).matches
        reads = _reads(pages, found, matches, Pipeline.load(ocr_folder))
    by_slice: dict[str, list[int]] = defaultdict(list)
    for i, page in enumerate(pages):
        for name in page.slices():
            by_slice[name].append(i)
    return {
        "output_type": "json", "task": TASK,
        "overall": _row(list(range(n)), pages, found, latencies, reads),
        "slices": {s: _row(by_slice[s], pages, found, latencies, reads)
                   for s in sorted(by_slice)},
        "test_set": {"source": "generated pages", "split": "offline-test", "n": n, "seed": seed,
                     **OFFLINE_PAGE_MIX.as_dict()},
        "ocr": {"artifacts": str(ocr_folder)} if ocr_folder is not None else None,
        "environment": {"backend": backend or manifest.backend, "threads": threads,
                        "cpu_count": os.cpu_count(), "machine": platform.machine()},
    }


COLUMNS = [("precision_50", "P@.5", "{:.3f}"), ("recall_50", "R@.5", "{:.3f}"),
           ("map", "mAP", "{:.3f}"), ("end_to_end_exact", "e2e", "{:.3f}"),
           ("ocr_on_true_boxes", "ocr@gt", "{:.3f}"), ("latency_p50_ms", "p50 ms", "{:.1f}"),
           ("latency_p99_ms", "p99 ms", "{:.1f}"), ("pages_per_s", "pages/s", "{:.1f}")]


def format_pages_table(results: dict[str, Any]) -> str:
    """The results as text: overall, then one row per slice."""
    lines = [f"{'slice':<24}{'pages':>6}{'formulas':>9}"
             + "".join(f"{label:>9}" for _, label, _ in COLUMNS)]
    for name, row in [("overall", results["overall"]), *results.get("slices", {}).items()]:
        cells = "".join(f"{(fmt.format(row[k]) if row.get(k) is not None else '-'):>9}"
                        for k, _, fmt in COLUMNS)
        lines.append(f"{name:<24}{row['n']:>6}{row.get('formulas', 0):>9}{cells}")
    return "\n".join(lines)
