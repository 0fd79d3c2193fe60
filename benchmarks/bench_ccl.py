"""Benchmark of the native connected-component op (csrc/ccl) against its anchors (issue 17.6).

Each contender returns the labels and every component's box and area:
  native  workloads.ocr._ccl: one C++ labelling pass fused with the statistics;
  onnxruntime-op  the same C++ kernel as ONNX Runtime's custom op (csrc/ort), one session.run of
          a one-node model per mask, 1 intra-op thread, when the library is built;
  scipy   scipy.ndimage.label (8-connected) + bincount + find_objects, the detector's former path;
  opencv  cv2.connectedComponentsWithStats (8-connected, CV_32S), 1 thread and OpenCV's default,
          when opencv-python-headless is installed (benchmark extra: ``pip install -e .[bench]``).
Inputs: the ink masks of the offline test (600 formula images, timed as one pass over all) and
1024x1024 random masks. The detector end to end (``detect``) is timed with the native op and with
the scipy fallback. Goal: native >= 5x scipy and at least as fast as OpenCV.

With ``--cuda`` (a GPU host; scripts/gpu-check runs it) it times the torch op instead, CPU
against CUDA on the same masks: the kernel alone (masks already on the GPU, synchronised) and
with the copies (host to device, labels and stats back). Nothing CUDA is timed without a GPU.

With ``--pipeline`` it times the OCR pipeline instead, images/s over the offline test at batch 1
and 32, one intra-op thread each: "staged" is the float candidate as abvoc's torch backend runs
it (detector in numpy with the native op, then the torch networks); "one-graph" is ocr-onegraph
made from it (detector, crops, recognizer and aligner as one ONNX graph with the custom ops, on
ONNX Runtime; only the converter after it). The graph takes a batch (padded images and their
sizes); the runner gives it 4 images a run (onnx_runner.GRAPH_BATCH, cheapest per image; fewer
when their marks pass 1,024), so a batch of 32 is 8 graph runs.

Run: ``python benchmarks/bench_ccl.py [--images N] [--repeats R] [--cuda | --pipeline
[--models DIR]]``. Figures are medians.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_stats import median_time  # noqa: E402  (one timing rule)
from benchmarks.counts import positive_int  # noqa: E402
from workloads.ocr import components, detector, ort_ops  # noqa: E402
from workloads.ocr.components import label_native, label_scipy  # noqa: E402
from workloads.ocr.dataset import OFFLINE_MIX, generate  # noqa: E402
from workloads.ocr.offline import DEFAULT_TEST_SIZE  # noqa: E402

try:
    import cv2
except ImportError:
    cv2 = None


def opencv(threads: int) -> Callable[[np.ndarray], Any]:
    def label(mask: np.ndarray) -> Any:
        cv2.setNumThreads(threads)
        return cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8,
                                                ltype=cv2.CV_32S)
    return label


def contenders() -> dict[str, Callable[[np.ndarray], Any]]:
    out: dict[str, Callable[[np.ndarray], Any]] = {"native": label_native, "scipy": label_scipy}
    if ort_ops.LIBRARY.is_file():
        out["onnxruntime-op"] = ort_ops.OrtLabeller(threads=1)
    if cv2 is not None:
        out["opencv-1-thread"] = opencv(1)
        out["opencv-default"] = opencv(0)  # 0 = OpenCV's own choice (all cores)
    return out


def row(name: str, seconds: float, base: float, unit: str, scale: float) -> str:
    return f"  {name:<17} {seconds * scale:10.3f} {unit}   native is {seconds / base:6.2f}x faster"


def bench_set(title: str, masks: list[np.ndarray], repeats: int, unit: str, scale: float) -> None:
    print(title, flush=True)
    times = {name: median_time(lambda f=f: [f(m) for m in masks], repeats)
             for name, f in contenders().items()}
    for name, seconds in times.items():
        print(row(name, seconds, times["native"], unit, scale), flush=True)


def bench_cuda(sets: dict[str, list[np.ndarray]], repeats: int) -> None:
    """The torch op on the CPU against its CUDA kernel, per set of masks (ms for the set)."""
    import torch

    from workloads.ocr import torch_ops

    reason = torch_ops.cuda_unavailable()
    if reason is not None:
        sys.exit(f"--cuda: the CUDA op cannot run here: {reason}")
    torch_ops.load()
    op = torch.ops.abvoc.connected_components
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"{torch.cuda.get_device_name(0)}", flush=True)
    for title, masks in sets.items():
        cpu = [torch.from_numpy(m) for m in masks]
        gpu = [t.cuda() for t in cpu]

        def on_gpu(gpu: list = gpu) -> None:
            for t in gpu:
                op(t)
            torch.cuda.synchronize()

        def with_copies(cpu: list = cpu) -> None:
            for t in cpu:
                labels, stats = op(t.cuda())
                labels.cpu(), stats.cpu()  # .cpu() waits for the kernel

        times = {"cpu op": median_time(lambda cpu=cpu: [op(t) for t in cpu], repeats),
                 "cuda kernel": median_time(on_gpu, repeats),
                 "cuda + copies": median_time(with_copies, repeats)}
        print(f"{title} (ms for all)", flush=True)
        for name, seconds in times.items():
            print(f"  {name:<17} {seconds * 1e3:10.3f} ms   "
                  f"{times['cpu op'] / seconds:6.2f}x the CPU op", flush=True)


def bench_pipeline(images: list[np.ndarray], repeats: int, models: Path | None) -> None:
    """Staged torch pipeline against the one-graph candidate, images/s at batch 1 and 32."""
    import tempfile

    import torch

    from workloads.ocr.candidates import train_candidate
    from workloads.ocr.onegraph import make_candidate
    from workloads.ocr.pipeline import Pipeline

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="abvoc-bench-") as scratch:
        folder = models or Path(scratch)
        base = folder / "ocr-small-mixed"
        if not (base / "candidate.json").exists():
            train_candidate("ocr-small-mixed", folder, n_train=600, epochs=4, seed=0)
        pipes = {"staged (torch)": Pipeline.load(base),
                 "one-graph (onnxruntime)": Pipeline.load(
                     make_candidate("ocr-onegraph", base, folder)["artifacts"])}
        print(f"OCR pipeline on {len(images)} offline-test images (images/s, 1 thread)")
        for batch in (1, 32):
            chunks = [images[i: i + batch] for i in range(0, len(images), batch)]
            rates = {name: len(images) / median_time(
                lambda p=pipe, cs=chunks: [p.predict(c) for c in cs], repeats)
                for name, pipe in pipes.items()}
            staged = rates["staged (torch)"]
            for name, rate in rates.items():
                print(f"  batch {batch:<3} {name:<24} {rate:9.1f} images/s   "
                      f"{rate / staged:5.2f}x staged", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=positive_int, default=DEFAULT_TEST_SIZE)
    parser.add_argument("--repeats", type=positive_int, default=7)
    parser.add_argument("--cuda", action="store_true",
                        help="time the torch op on the CPU against its CUDA kernel instead")
    parser.add_argument("--pipeline", action="store_true",
                        help="time the staged OCR pipeline against the one-graph candidate")
    parser.add_argument("--models", type=Path, default=None,
                        help="--pipeline: a folder holding (or to keep) ocr-small-mixed")
    args = parser.parse_args()
    if args.pipeline:
        bench_pipeline([s.image for s in generate(args.images, OFFLINE_MIX, 0, "offline-test")],
                       args.repeats, args.models)
        return
    if args.cuda:
        images = [s.image for s in generate(args.images, OFFLINE_MIX, 0, "offline-test")]
        rng = np.random.default_rng(0)
        bench_cuda({f"offline test: {len(images)} ink masks":
                    [detector.ink_mask(detector.ink_of(im)) for im in images],
                    "8 random 1024x1024 masks, ink share 0.5":
                    [rng.random((1024, 1024)) < 0.5 for _ in range(8)]}, args.repeats)
        return
    if not components.NATIVE:
        sys.exit("the native op is not built: pip install -e . (or python setup.py build_ext -i)")
    print(f"opencv: {cv2.__version__ if cv2 is not None else 'not installed (bench extra)'}")
    print(f"onnxruntime-op: {ort_ops.LIBRARY if ort_ops.LIBRARY.is_file() else 'not built'}")
    images = [s.image for s in generate(args.images, OFFLINE_MIX, 0, "offline-test")]
    masks = [detector.ink_mask(detector.ink_of(im)) for im in images]
    pixels = sum(m.size for m in masks)
    bench_set(f"offline test: {len(masks)} ink masks, {pixels / len(masks):.0f} px each "
              f"(ms for all)", masks, args.repeats, "ms", 1e3)
    rng = np.random.default_rng(0)
    for p in (0.1, 0.5):
        bench_set(f"1024x1024 random mask, ink share {p} (ms per mask)",
                  [rng.random((1024, 1024)) < p], args.repeats, "ms", 1e3)
    print("detector end to end on the offline test (ms for all images)", flush=True)
    native = median_time(lambda: [detector.detect(im) for im in images], args.repeats)
    components.NATIVE = False
    fallback = median_time(lambda: [detector.detect(im) for im in images], args.repeats)
    components.NATIVE = True
    print(row("detect (native)", native, native, "ms", 1e3))
    print(row("detect (scipy)", fallback, native, "ms", 1e3))


if __name__ == "__main__":
    main()
