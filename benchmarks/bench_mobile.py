"""The mobile target beside the float model it came from (issue 17.4).

Trains ocr-small-mixed small (unless --models holds it), quantizes it to ocr-mobile-int8 (static
int8 QDQ, calibrated on its training split) and compares three ways of running the same networks:
  float/torch  the float candidate as abvoc's torch backend runs it (its .pt weights);
  float/ort    the same float networks exported to ONNX, on ONNX Runtime's CPU provider;
  int8/ort     the quantized ONNX files, on ONNX Runtime's CPU provider.
Size is the networks' files (MiB). Accuracy is exact match (and symbol accuracy) on the offline
test's first --images formulas. Latency is per image at batch 1: every contender runs the same
images, in blocks taken in rotating order (so machine noise falls on all alike), with one
intra-op thread for torch and ONNX Runtime alike; the figure is the median over images x
repeats, for the whole pipeline (detector, crops, networks, aligner, converter) and for the two
network calls alone.

Run: ``python benchmarks/bench_mobile.py [--images N] [--repeats R] [--models DIR]``
(about 2 minutes on 2 cores with the defaults).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.counts import positive_int  # noqa: E402
from serving.bundles.model_size import network_bytes  # noqa: E402
from workloads.ocr.candidates import train_candidate  # noqa: E402
from workloads.ocr.dataset import OFFLINE_MIX, generate  # noqa: E402
from workloads.ocr.mobile import export_float, quantize_candidate  # noqa: E402
from workloads.ocr.offline import evaluate  # noqa: E402
from workloads.ocr.onnx_runner import OnnxFileRunner  # noqa: E402
from workloads.ocr.pipeline import Pipeline, Runner  # noqa: E402

BASE, MOBILE = "ocr-small-mixed", "ocr-mobile-int8"


class TimedRunner:
    """Another runner with the seconds spent in its network calls added up."""

    def __init__(self, inner: Runner) -> None:
        self.inner, self.seconds = inner, 0.0

    def run(self, name: str, batch: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        try:
            return self.inner.run(name, batch)
        finally:
            self.seconds += time.perf_counter() - start


def contenders(base: Path, mobile: Path, scratch: Path) -> dict[str, tuple[Pipeline, float]]:
    """Each way of running the networks, as a pipeline with a timed runner, and its size."""
    float_pipe = Pipeline.load(base)
    onnx_files = export_float(float_pipe, scratch)
    int8_pipe = Pipeline.load(mobile)
    mib = 2.0 ** 20
    return {
        "float/torch": (float_pipe.with_runner(TimedRunner(float_pipe.runner)),
                        network_bytes(base) / mib),
        "float/ort": (float_pipe.with_runner(TimedRunner(OnnxFileRunner(onnx_files, 1))),
                      sum(p.stat().st_size for p in onnx_files.values()) / mib),
        "int8/ort": (Pipeline(int8_pipe.spec, int8_pipe.recognizer, int8_pipe.aligner,
                              TimedRunner(int8_pipe.runner)),
                     network_bytes(mobile) / mib),
    }


def latencies(pipes: dict[str, Pipeline], images: list[np.ndarray],
              repeats: int) -> dict[str, tuple[float, float]]:
    """Median ms per image (whole pipeline, networks only). Each repeat runs every contender
    over all the images in turn, starting with the next contender each time: blocks keep one
    runtime's caches from evicting another's, rotation spreads the machine's noise."""
    whole: dict[str, list[float]] = {n: [] for n in pipes}
    nets: dict[str, list[float]] = {n: [] for n in pipes}
    for pipe in pipes.values():  # warm-up: first calls allocate and fill the resize caches
        pipe.predict(images)
    names = list(pipes)
    for r in range(repeats):
        for k in range(len(names)):
            name = names[(r + k) % len(names)]
            pipe, runner = pipes[name], pipes[name].runner
            for image in images:
                before = runner.seconds
                start = time.perf_counter()
                pipe.predict_one(image)
                whole[name].append(time.perf_counter() - start)
                nets[name].append(runner.seconds - before)
    return {n: (1e3 * statistics.median(whole[n]), 1e3 * statistics.median(nets[n]))
            for n in pipes}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=positive_int, default=300, help="offline test formulas")
    parser.add_argument("--latency-images", type=positive_int, default=100)
    parser.add_argument("--repeats", type=positive_int, default=6)
    parser.add_argument("--n-train", type=positive_int, default=600)
    parser.add_argument("--epochs", type=positive_int, default=6)
    parser.add_argument("--models", type=Path, default=None,
                        help="a folder to keep (or reuse) the trained and quantized candidates")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="abvoc-bench-mobile-") as tmp:
        models = args.models or Path(tmp) / "models"
        base = models / BASE
        if not (base / "candidate.json").exists():
            print(f"training {BASE} (n_train {args.n_train}, {args.epochs} epochs)", flush=True)
            train_candidate(BASE, models, n_train=args.n_train, epochs=args.epochs, seed=0)
        made = quantize_candidate(MOBILE, base, models)
        cal = made["calibration"]
        print(f"quantized to {MOBILE} v{made['version']} (QDQ int8; calibration: "
              f"{cal['n_formulas']} training formulas, {cal['n_recognizer']} crops, "
              f"{cal['n_aligner']} pairs) in {time.perf_counter() - t0:.0f} s", flush=True)
        runs = contenders(base, Path(made["artifacts"]), Path(tmp))
        samples = generate(args.images, OFFLINE_MIX, 0, "offline-test")
        accuracy = {n: evaluate(p, samples, latency_samples=1)["overall"]
                    for n, (p, _) in runs.items()}
        lat = latencies({n: p for n, (p, _) in runs.items()},
                        [s.image for s in samples[: args.latency_images]], args.repeats)
    print(f"offline test: {len(samples)} formulas; latency: "
          f"{len(samples[: args.latency_images])} images x {args.repeats}, batch 1, 1 thread "
          "(torch and ONNX Runtime)")
    print(f"{'model':<13}{'size MiB':>9}{'exact':>8}{'sym.acc':>9}{'p50 ms':>9}{'nets ms':>9}")
    for name, (_, size) in runs.items():
        a, (whole, nets) = accuracy[name], lat[name]
        print(f"{name:<13}{size:>9.3f}{a['exact_match']:>8.3f}{a['symbol_accuracy']:>9.3f}"
              f"{whole:>9.2f}{nets:>9.3f}")
    print(f"done in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
