"""Where an answer's records and their commit cost least: on the batcher after the model, alone,
or on a writer thread of their own.

`bench_api.py --breakdown` finds each answer's records (event, ledger row, kept input) and their
group commit two to four times dearer inside the serving process than `bench_commit.py` finds
the commit alone. This says why, and whether moving them would help: with the real candidate
of `bench_api.py` (the same small OCR model, trained once into `--models`), per answer, the CPU
of `serving.answer_rows.answer_rows` (via bench_commit's unit) and of their commit through
`core.store.groupcommit.GroupCommitter` in batches of 4, when they

* run alone on one thread, nothing else running (bench_commit's case);
* run on the thread that has just run the candidate's batch, as the candidate's batcher runs
  them with ABVOC_REQUEST_SPOOL=off (the model's weights and activations have just passed
  through the core's caches; by default the batcher makes the records and appends them to the
  request spool, whose mover commits them);
* are handed to a writer thread of their own, the batch's callers waiting for it as they must
  (an answer is given only once its rows are durable): one more thread hand-off per batch;
* are handed to a writer thread and the next batch's inference starts at once (pipelined), so
  the writer runs beside the model on the other core.

Cases alternate by round; figures are medians of the rounds.

    python benchmarks/bench_record_placement.py [--batches 300] [--rounds 3] [--models DIR]
"""

from __future__ import annotations

import argparse
import queue
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_api import CANDIDATE, _settings, prepared  # noqa: E402
from benchmarks.bench_commit import unit  # noqa: E402
from benchmarks.counts import positive_int  # noqa: E402

UNITS = 4  # answers per batch, as the batcher merges them at 8 concurrent requests


class Bench:
    """The loaded candidate's pipeline, a store and its group-commit writer."""

    def __init__(self, models: str) -> None:
        import torch

        from app import create_app
        from core.store.groupcommit import GroupCommitter
        from serving.images import decode_image, encode_png
        from workloads.ocr.dataset import ONLINE_MIX, sample_requests

        torch.set_num_threads(1)  # as bench_api's server runs it
        self.data_dir = tempfile.mkdtemp(prefix="abvoc-bench-placement-")
        models, _key = prepared(self.data_dir, models)
        self.settings = _settings(self.data_dir, models)
        self.app = create_app(self.settings)
        self.pipeline = self.app.extensions["abvoc_serving"].pool.get(CANDIDATE).pipeline
        self.images = [decode_image(encode_png(s.image))
                       for s in sample_requests(64, ONLINE_MIX, seed=1)]
        self.writer = GroupCommitter(self.app.extensions["abvoc"].db)
        self._next = 0

    def infer(self, k: int) -> None:
        start = (k * UNITS) % (len(self.images) - UNITS)
        self.pipeline.predict(self.images[start:start + UNITS])

    def record_and_commit(self) -> tuple[float, float]:
        """CPU seconds of this thread: (the batch's records, their commit)."""
        first, self._next = self._next, self._next + UNITS
        t0 = time.thread_time()
        rows = [unit(first + j, self.settings) for j in range(UNITS)]
        t1 = time.thread_time()
        self.writer.insert_many(rows)
        return t1 - t0, time.thread_time() - t1

    def close(self) -> None:
        import shutil

        from app import close_app

        self.writer.close()
        close_app(self.app)
        shutil.rmtree(self.data_dir, ignore_errors=True)


def same_thread(bench: Bench, batches: int, model: bool) -> tuple[float, float]:
    """(records, commit) CPU ms per answer on this thread, after the model's batch or not."""
    spent = []
    for k in range(batches):
        if model:
            bench.infer(k)
        spent.append(bench.record_and_commit())
    return _per_answer(spent, batches)


def writer_thread(bench: Bench, batches: int, wait: bool) -> tuple[float, float]:
    """The same on a writer thread fed after each batch's inference; the caller waits for each
    commit (`wait`) or starts the next batch at once."""
    jobs: queue.Queue = queue.Queue()
    done = threading.Event()
    spent: list[tuple[float, float]] = []

    def run() -> None:
        while jobs.get() is not None:
            spent.append(bench.record_and_commit())
            done.set()

    thread = threading.Thread(target=run, name="writer")
    thread.start()
    for k in range(batches):
        bench.infer(k)
        done.clear()
        jobs.put(k)
        if wait:
            done.wait()
    jobs.put(None)
    thread.join()
    return _per_answer(spent, batches)


def _per_answer(spent: list[tuple[float, float]], batches: int) -> tuple[float, float]:
    """Batches' (records, commit) CPU seconds as ms per answer."""
    return tuple(sum(s[i] for s in spent) * 1000 / (batches * UNITS) for i in (0, 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=positive_int, default=300)
    parser.add_argument("--rounds", type=positive_int, default=3)
    parser.add_argument("--models", default=None,
                        help="a model store holding the trained candidate (trained if missing)")
    args = parser.parse_args()
    bench = Bench(args.models or str(Path(tempfile.gettempdir()) / "abvoc-bench-models"))
    cases: dict[str, Callable[[], tuple[float, float]]] = {
        "alone, nothing else running": lambda: same_thread(bench, args.batches, False),
        "on the batcher, after the model (today)": lambda: same_thread(bench, args.batches, True),
        "writer thread, callers waiting": lambda: writer_thread(bench, args.batches, True),
        "writer thread, pipelined": lambda: writer_thread(bench, args.batches, False),
    }
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    try:
        for case in cases.values():  # warm-up: caches, the writer's statements
            case()
        for r in range(args.rounds):
            for name in list(cases) if r % 2 == 0 else list(cases)[::-1]:
                figures[name].append(cases[name]())
                records, commit = figures[name][-1]
                print(f"round {r + 1}: {name:42s} records {records:.4f}  commit {commit:.4f}  "
                      f"ms CPU per answer", flush=True)
    finally:
        bench.close()
    print(f"\nmedians of {args.rounds} rounds, {args.batches} batches of {UNITS} answers "
          "(ms CPU per answer: the records, their commit, both):")
    for name, values in figures.items():
        records = statistics.median(v[0] for v in values)
        commit = statistics.median(v[1] for v in values)
        both = statistics.median(v[0] + v[1] for v in values)
        print(f"  {name:42s} {records:.4f}  {commit:.4f}  {both:.4f}")


if __name__ == "__main__":
    main()
