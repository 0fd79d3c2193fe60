"""Formula extraction speed: pages/s per extraction candidate and backend at batch 1 and 8.

Run: python benchmarks/bench_pages.py [--models-dir DIR] [--pages 32] [--rounds 3]
         [--backends torch,onnxruntime] [--json out.json]

Candidates are the extraction bundles `pages-xycut` and `pages-fcn` in ``--models-dir`` (as
`abvoc pages train` writes them, default the settings' model store); where none are there, small
ones are built into a temporary folder first (speed does not depend on how well they were
trained). Each call gives the pipeline 1 or 8 offline-test pages (720 x 1000) and the rate is
pages over wall time, median of the rounds, one intra-op thread a call on both backends.
The anchor, measured in the same run, is the floor every candidate stands on: reading the ink of
a page and labelling its connected components (numpy threshold + scipy.ndimage.label).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from serving.backends import (  # noqa: E402
    BackendSettings,
    UnknownBackend,
    get_backend,
    unavailable_reason,
)
from serving.bundles import validate_bundle  # noqa: E402
from workloads.ocr.pages.generator import OFFLINE_PAGE_MIX, generate_pages  # noqa: E402

NAMES = ("pages-xycut", "pages-fcn")
BATCH_SIZES = (1, 8)


def _rate(call: Any, pages: list[np.ndarray], batch: int, rounds: int) -> float:
    call(pages[:batch])  # warm-up
    rates = []
    for _ in range(rounds):
        start = time.perf_counter()
        for i in range(0, len(pages) - batch + 1, batch):
            call(pages[i:i + batch])
        rates.append((len(pages) // batch * batch) / (time.perf_counter() - start))
    return statistics.median(rates)


def _anchor(images: list[np.ndarray]) -> None:
    for image in images:
        ndimage.label(image < 153, structure=np.ones((3, 3), bool))


def bench(models_dir: Path, n_pages: int, rounds: int, backends: list[str]) -> dict[str, Any]:
    torch.set_num_threads(1)
    pages = [p.image for p in generate_pages(n_pages, OFFLINE_PAGE_MIX, 0, "offline-test")]
    out: dict[str, Any] = {"anchor_pages_per_s": round(_rate(_anchor, pages, 1, rounds), 1),
                           "candidates": {}}
    for name in NAMES:
        manifest, stages = validate_bundle(models_dir / name)
        for backend in backends:
            engine = get_backend(backend, BackendSettings(device="cpu", intra_op_threads=1))
            engine.load(stages[0].pipeline.networks())
            pipe = stages[0].pipeline.with_runner(engine)
            try:
                for batch in BATCH_SIZES:
                    rate = _rate(pipe.predict, pages, batch, rounds)
                    out["candidates"][f"{name} {backend} batch {batch}"] = round(rate, 1)
            finally:
                engine.unload()
    return out


def usable_backends(names: str) -> list[str]:
    """The comma-separated backends that run here; each one that does not is named, with why,
    so a missing backend (TensorRT without a GPU) is never a silently shorter table. An unknown
    name raises UnknownBackend."""
    usable = []
    for name in names.split(","):
        reason = unavailable_reason(name)
        if reason is None:
            usable.append(name)
        else:
            print(f"[skip] {name}: {reason}", flush=True)
    return usable


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=None)
    parser.add_argument("--pages", type=int, default=32,
                        help=f"at least {max(BATCH_SIZES)}, the largest batch")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", default="torch,onnxruntime")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    # Fewer pages than a batch time no call at all, and printed 0.0 pages/s.
    if args.pages < max(BATCH_SIZES):
        parser.error(f"--pages takes at least {max(BATCH_SIZES)} (one batch of the largest "
                     f"size, {BATCH_SIZES}); got {args.pages}")
    if args.rounds < 1:
        parser.error(f"--rounds takes 1 or more; got {args.rounds}")
    try:
        backends = usable_backends(args.backends)
    except UnknownBackend as error:
        parser.error(str(error))
    models = args.models_dir
    if models is None:
        from core.settings import load_settings

        models = load_settings().models_dir
    with tempfile.TemporaryDirectory() as scratch:
        if not all((models / n / "candidate.toml").is_file() for n in NAMES):
            from workloads.ocr.pages.bundle import build_extractors

            print(f"no extraction bundles in {models}: building small ones", file=sys.stderr)
            models = Path(scratch)
            build_extractors(models, n_train=12, n_validation=3, epochs=2)
        result = bench(models, args.pages, args.rounds, backends)
    print(f"{'candidate':<40}{'pages/s':>10}")
    print(f"{'anchor: threshold + ndimage.label':<40}{result['anchor_pages_per_s']:>10.1f}")
    for key, rate in result["candidates"].items():
        ratio = rate / result["anchor_pages_per_s"]
        print(f"{key:<40}{rate:>10.1f}   {ratio:.2f}x anchor")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
