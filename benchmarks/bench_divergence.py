"""Benchmark of the raw-array divergence report against Evidently (see shared PERFORMANCE.md).

1M reference (offline-test) predictions against 1M online ones, five columns each: slice,
output label, correct, confidence, latency. The online side has a real shift: two slices grow,
one label is over-predicted (the idle-bot case), three slices lose accuracy, confidence drops and
latency grows. Target: < 1 s and < 300 MiB peak, >= 15x Evidently 0.7.23 ``DataDriftPreset`` on
the same five columns.

Evidently needs pandas < 3 and the project has pandas 3, so the anchor runs in its own virtual
environment, ``~/.cache/abvoc/venv-evidently`` (made on first use: ``python3 -m venv`` and
``pip install 'evidently==0.7.23' 'pandas<3'``; if that fails the anchor is reported missing).
Both sides run as child processes on the same data saved as ``.npy`` files, so time and memory
are measured the same way: wall time per run (median of ``--repeats``) and peak RSS
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``), whole process and growth over what the process
held just before the first run (interpreter, libraries and the loaded data; for Evidently the
pandas frames too). Ours is also timed in this process, with ``tracemalloc``'s peak of what the
report itself allocates.

Run: ``python benchmarks/bench_divergence.py [--rows N] [--repeats R] [--no-anchor]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ANCHOR_VENV = Path.home() / ".cache" / "abvoc" / "venv-evidently"
ANCHOR_PINS = ["evidently==0.7.23", "pandas<3"]
COLUMNS = ("slice", "output", "correct", "confidence", "latency_ms")
SLICES = tuple(f"{family}/{kind}" for family in ("printed", "handwritten", "screen", "photo")
               for kind in ("small", "middle", "large", "noisy", "rotated"))
LABELS = ("idle", "move", "attack", "jump", "crouch", "reload", "use", "chat")


def say(text: str) -> None:
    print(text, flush=True)


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _side(rng: np.random.Generator, n: int, online: bool) -> dict[str, np.ndarray]:
    """One side's five columns; ``online`` applies the shift."""
    mix = np.linspace(1.0, 2.0, len(SLICES))
    if online:
        mix[[5, 6]] *= 4  # handwritten/small and handwritten/middle grow
    slice_ = rng.choice(len(SLICES), n, p=mix / mix.sum()).astype(np.int16)
    truth = rng.choice(len(LABELS), n, p=[0.4, 0.2, 0.12, 0.1, 0.08, 0.05, 0.03, 0.02])
    accuracy = np.linspace(0.99, 0.93, len(SLICES))
    if online:
        accuracy[[5, 6, 17]] -= 0.12
    right = rng.random(n) < accuracy[slice_]
    output = np.where(right, truth, rng.integers(0, len(LABELS), n))
    if online:  # answers 'idle' on a third of the inputs, whatever they are
        output = np.where(rng.random(n) < 0.35, 0, output)
    output = output.astype(np.int16)
    correct = (output == truth).astype(np.int8)
    if online:  # customers correct 90 % of the wrong answers; other truths stay unknown
        correct = np.where((correct == 0) & (rng.random(n) < 0.9), 0, -1).astype(np.int8)
    confidence = rng.beta(8 if not online else 5, 1.5, n)
    latency = rng.lognormal(3.0 if not online else 3.15, 0.5, n)
    return {"slice": slice_, "output": output, "correct": correct, "confidence": confidence,
            "latency_ms": latency}


def generate(n: int, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return {"reference": _side(rng, n, False), "online": _side(rng, n, True)}


def save(data: dict[str, dict[str, np.ndarray]], folder: Path) -> None:
    for side, columns in data.items():
        for name, values in columns.items():
            np.save(folder / f"{side}_{name}.npy", values)


def load(folder: Path) -> dict[str, dict[str, np.ndarray]]:
    return {side: {name: np.load(folder / f"{side}_{name}.npy") for name in COLUMNS}
            for side in ("reference", "online")}


def our_report(data: dict[str, dict[str, np.ndarray]]) -> dict[str, Any]:
    from evaluation.divergence_arrays import PredictionArrays, divergence_from_arrays

    ref, on = (PredictionArrays(**data[side]) for side in ("reference", "online"))
    return divergence_from_arrays(ref, on, slices=SLICES, labels=LABELS, candidate="bench")


def evidently_report(frames: list[Any]) -> Any:
    """Evidently's drift report on the two frames, rendered to a dict (its results)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(categorical_columns=["slice", "output", "correct"],
                                numerical_columns=["confidence", "latency_ms"])
    reference, online = (Dataset.from_pandas(f, data_definition=definition) for f in frames)
    snapshot = Report([DataDriftPreset()]).run(current_data=online, reference_data=reference)
    return snapshot.dict()


def child(kind: str, folder: Path, repeats: int) -> None:
    """Run one side ``repeats`` times on the saved data; print times and RSS as JSON."""
    sys.path.insert(0, str(ROOT))
    data = load(folder)
    frames: list[Any] = []
    if kind == "evidently":
        import evidently.presets  # noqa: F401  (imports before the baseline RSS)
        import pandas as pd

        frames = [pd.DataFrame(data[side]) for side in ("reference", "online")]
    else:
        import evaluation.divergence_arrays  # noqa: F401  (imports before the baseline RSS)
    before = peak_rss_mib()
    times, summary = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = (evidently_report(frames) if kind == "evidently" else our_report(data))
        times.append(time.perf_counter() - start)
        if summary is None:
            summary = _summary(kind, result)
        print(f"  {kind} run {len(times)}: {times[-1]:.3f} s", file=sys.stderr, flush=True)
    after = peak_rss_mib()
    print(json.dumps({"times": times, "rss_before_mib": before, "peak_rss_mib": after,
                      "summary": summary}))


def _summary(kind: str, result: Any) -> str:
    if kind == "ours":
        top = result["findings"][0] if result["findings"] else None
        kinds = sorted({f["kind"] for f in result["findings"]})
        return (f"{len(result['findings'])} findings ({', '.join(kinds)}); first: "
                f"{top['kind']} {top.get('label') or top['slice']!r}" if top else "no findings")
    metrics = result.get("metrics", [])
    return f"{len(metrics)} metric results"


def run_child(python: str, kind: str, folder: Path, repeats: int) -> dict[str, Any] | str:
    """The child's JSON, or why it failed."""
    proc = subprocess.run([python, str(Path(__file__).resolve()), "--child", kind,
                           "--data", str(folder), "--repeats", str(repeats)],
                          stdout=subprocess.PIPE, stderr=None, text=True, cwd=ROOT)
    if proc.returncode != 0:
        return f"{kind} child exited {proc.returncode}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def anchor_python() -> tuple[str | None, str]:
    """The anchor venv's python (made on first use), or None and why it is unavailable."""
    python = ANCHOR_VENV / "bin" / "python"
    probe = [str(python), "-c", "import evidently, pandas; print(evidently.__version__, "
             "pandas.__version__)"]
    if python.exists():
        ok = subprocess.run(probe, capture_output=True, text=True)
        if ok.returncode == 0 and ok.stdout.startswith("0.7.23 "):
            return str(python), ok.stdout.strip()
    say(f"anchor: creating {ANCHOR_VENV} with {' '.join(ANCHOR_PINS)} (once, a few minutes)")
    made = subprocess.run(["python3", "-m", "venv", str(ANCHOR_VENV)], capture_output=True,
                          text=True)
    if made.returncode != 0:
        return None, f"python3 -m venv failed: {made.stderr.strip()[-300:]}"
    pip = subprocess.run([str(python), "-m", "pip", "install", "-q", *ANCHOR_PINS],
                         capture_output=True, text=True)
    if pip.returncode != 0:
        return None, f"pip install {' '.join(ANCHOR_PINS)} refused: {pip.stderr.strip()[-300:]}"
    ok = subprocess.run(probe, capture_output=True, text=True)
    if ok.returncode != 0:
        return None, f"evidently does not import: {ok.stderr.strip()[-300:]}"
    return str(python), ok.stdout.strip()


def in_process(data: dict[str, dict[str, np.ndarray]], repeats: int) -> tuple[float, float]:
    """Median seconds (after one warm-up) and tracemalloc peak MiB of our report here."""
    sys.path.insert(0, str(ROOT))
    our_report(data)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        our_report(data)
        times.append(time.perf_counter() - start)
    tracemalloc.start()
    our_report(data)
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return statistics.median(times), peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows per side")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-anchor", action="store_true")
    parser.add_argument("--child", choices=["ours", "evidently"], help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.data, args.repeats)
        return

    say(f"generating {args.rows:,} reference + {args.rows:,} online predictions "
        f"({len(SLICES)} slices, {len(LABELS)} labels) ...")
    data = generate(args.rows)
    with tempfile.TemporaryDirectory(prefix="abvoc-bench-div-") as tmp:
        folder = Path(tmp)
        save(data, folder)
        say(f"ours in this process (median of {args.repeats}, after a warm-up) ...")
        ours_here, traced = in_process(data, args.repeats)
        say(f"  {ours_here * 1000:.0f} ms, tracemalloc peak {traced:.1f} MiB "
            f"(what the report allocates; inputs excluded)")
        say("ours in a child process, same .npy data ...")
        ours = run_child(sys.executable, "ours", folder, args.repeats)
        if isinstance(ours, str):
            sys.exit(ours)
        _print_side("ours", ours)
        anchor: dict[str, Any] | str = "skipped (--no-anchor)"
        if not args.no_anchor:
            python, why = anchor_python()
            if python is None:
                anchor = why
            else:
                say(f"anchor: evidently, pandas {why} — DataDriftPreset on {len(COLUMNS)} "
                    f"columns (median of {args.repeats}; seconds a run) ...")
                anchor = run_child(python, "evidently", folder, args.repeats)
                if not isinstance(anchor, str):
                    _print_side("anchor", anchor)
    say("")
    our_t = statistics.median(ours["times"])
    say(f"ours:   {our_t * 1000:8.0f} ms  peak RSS {ours['peak_rss_mib']:6.0f} MiB "
        f"(+{ours['peak_rss_mib'] - ours['rss_before_mib']:.0f} over the loaded data), "
        f"tracemalloc peak {traced:.0f} MiB; in-process {ours_here * 1000:.0f} ms")
    if isinstance(anchor, str):
        say(f"anchor: unavailable: {anchor}")
        return
    anchor_t = statistics.median(anchor["times"])
    say(f"anchor: {anchor_t * 1000:8.0f} ms  peak RSS {anchor['peak_rss_mib']:6.0f} MiB "
        f"(+{anchor['peak_rss_mib'] - anchor['rss_before_mib']:.0f} over the loaded frames)  "
        f"[evidently 0.7.23 DataDriftPreset]")
    say(f"ratio:  {anchor_t / our_t:.1f}x faster (target >= 15x, < 1 s, < 300 MiB peak); "
        f"{os.cpu_count()} CPUs")


def _print_side(name: str, result: dict[str, Any]) -> None:
    times = ", ".join(f"{t * 1000:.0f}" for t in result["times"])
    say(f"  {name}: runs {times} ms; peak RSS {result['peak_rss_mib']:.0f} MiB; "
        f"{result['summary']}")


if __name__ == "__main__":
    main()
