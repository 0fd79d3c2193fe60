"""The group commit of a batch of answers' rows on SQLite, alone.

Per answer `/v1/predict` writes the PredictionMade event's outbox row, its served-ledger row
and, where served inputs are kept for annotators, the kept input, all made by
`serving.answer_rows.answer_rows` (here too). With ABVOC_REQUEST_SPOOL=off a candidate's batcher
commits its batch's rows in one transaction through `core.store.groupcommit.GroupCommitter`
before the callers wake; by default the batcher appends them to the request spool and the
spool's mover commits them this way, many answers at a time. This times that commit on one
thread, with a 1.3 KB image (the median of the OCR benchmark's), batches of
`--units` answers as the batcher merges them (about 4 at 8 concurrent requests in
`bench_api.py`), on a fresh store migrated as the service migrates it; and the same with no kept
input, and with another page size, in the same run, alternating. It prints the CPU per commit
and per answer (medians of the rounds), which `bench_api.py --breakdown` shows inside the whole
service as the durable write when run with ABVOC_REQUEST_SPOOL=off.

    python benchmarks/bench_commit.py [--commits 1000] [--units 4] [--rounds 3]
                                      [--page-sizes 4096,8192]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.counts import positive_int  # noqa: E402
from core import events  # noqa: E402
from core.ids import time_ordered_id  # noqa: E402
from core.settings import Settings, load_settings  # noqa: E402
from core.store import schema  # noqa: E402
from core.store.db import Database  # noqa: E402
from core.store.groupcommit import GroupCommitter  # noqa: E402
from serving.answer_rows import answer_rows  # noqa: E402
from serving.predict import PredictRequest  # noqa: E402

IMAGE = os.urandom(1300)


def unit(i: int, settings: Settings) -> dict:
    """One watched answer's rows, made by the service's own `answer_rows`."""
    input_hash = hashlib.sha256(str(i).encode()).hexdigest()
    event = events.make_event(
        events.PREDICTION_MADE, prediction_id=time_ordered_id(), experiment_id=1,
        arm="treatment", candidate="ocr-small-mixed", candidate_version="1+abc", shadow=False,
        unit_id=f"user-{i}", slice="handwritten/middle", input_hash=input_hash,
        output=r"\frac{1}{2}+x", output_type="latex", confidence=0.93, latency_ms=12.345,
        error=None, stages={})
    req = PredictRequest(payload=None, input_hash=input_hash, unit_id=f"user-{i}",
                         raw_input=IMAGE)
    return answer_rows(event, settings, True, req)


def run(page_size: int, keep: bool, commits: int, units: int) -> float:
    """CPU ms per commit of `units` answers, after a warm-up of 100 commits."""
    folder = tempfile.mkdtemp(prefix="abvoc-bench-commit-")
    try:
        path = Path(folder) / "abvoc.db"
        with sqlite3.connect(path) as conn:  # before any table: the page size is the file's
            conn.execute(f"PRAGMA page_size={page_size}")
            conn.execute("VACUUM")
        settings = load_settings(env={"ABVOC_DATA_DIR": folder,
                                      "ABVOC_INPUT_RETENTION_HOURS": "72" if keep else "0"})
        db = Database(settings.database_url)
        schema.upgrade(db)
        writer = GroupCommitter(db)
        batches = [[unit(b * units + j, settings) for j in range(units)]
                   for b in range(commits + 100)]
        for batch in batches[:100]:
            writer.insert_many(batch)
        start = time.thread_time()
        for batch in batches[100:]:
            writer.insert_many(batch)
        spent = time.thread_time() - start
        writer.close()
        db.dispose()
        return spent * 1000 / commits
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=positive_int, default=1000)
    parser.add_argument("--units", type=positive_int, default=4, help="answers per commit")
    parser.add_argument("--rounds", type=positive_int, default=3)
    parser.add_argument("--page-sizes", default="4096,8192",
                        help="comma-separated; the first is SQLite's default")
    args = parser.parse_args()
    sizes = [int(s) for s in args.page_sizes.split(",")]
    cases = [(sizes[0], True), (sizes[0], False), *((s, True) for s in sizes[1:])]
    figures: dict[tuple[int, bool], list[float]] = {case: [] for case in cases}
    for r in range(args.rounds):
        for case in cases if r % 2 == 0 else cases[::-1]:
            figures[case].append(run(*case, args.commits, args.units))
            print(f"round {r + 1}: page {case[0]}, kept input {'yes' if case[1] else 'no '}: "
                  f"{figures[case][-1]:.3f} ms CPU per commit", flush=True)
    print(f"\nmedians of {args.rounds} rounds, {args.commits} commits of {args.units} answers:")
    for (size, keep), values in figures.items():
        ms = statistics.median(values)
        print(f"  page {size:>5}, kept input {'yes' if keep else 'no '}: {ms:.3f} ms CPU per "
              f"commit, {ms / args.units:.4f} per answer")


if __name__ == "__main__":
    main()
