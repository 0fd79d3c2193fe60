"""Finishing on the batcher's worker (batching.Finish): each request's result is finished there,
the batch's finished values go through `together` once, and a caller wakes with its own value,
its own error, or (past its deadline, before the worker claimed it) a timeout, never twice."""

from __future__ import annotations

import threading
import time

import pytest

from serving.batch_request import Finish, FinishingBacklog
from serving.batching import BatchTimeout, ItemBatcher
from tests.serving.test_batching import concurrently


class Ledger:
    """A `together` that records each call's values and the thread it ran on."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.calls: list[list[tuple[int, str]]] = []
        self.fail_on = fail_on

    def __call__(self, values: list[tuple[int, str]]) -> None:
        if self.fail_on is not None and any(v == self.fail_on for v, _ in values):
            raise RuntimeError("the commit failed")
        self.calls.append([(v, threading.current_thread().name) for v, _ in values])


def _each(result: int) -> tuple[int, str]:
    if result == 70:
        raise ValueError("seven cannot be recorded")
    return result, threading.current_thread().name


def test_each_runs_on_the_worker_and_together_once_per_batch() -> None:
    ledger = Ledger()
    finish = Finish(_each, ledger)
    with ItemBatcher(lambda items: [10 * i for i in items], max_batch_size=8,
                     max_batch_time_ms=100, name="x") as batcher:
        results = concurrently(8, lambda i: batcher.submit(i, finish))
        plain = batcher.submit(3)
    assert plain == 30  # without a Finish, the result as it was
    for i in range(8):
        if i == 7:
            assert isinstance(results[i], ValueError)  # its own error, the others unharmed
            continue
        value, thread = results[i]
        assert value == 10 * i and thread.startswith("batcher-x")
    recorded = [v for call in ledger.calls for v, _ in call]
    assert sorted(recorded) == [10 * i for i in range(7)]  # each once; 7 never reached it
    assert len(ledger.calls) < 7  # merged: one `together` per batch, not per request
    assert all(thread.startswith("batcher-x") for call in ledger.calls for _, thread in call)


def test_a_failing_together_fails_its_batch_callers_only() -> None:
    ledger = Ledger(fail_on=20)
    with ItemBatcher(lambda items: [10 * i for i in items], max_batch_size=1) as batcher:
        with pytest.raises(RuntimeError, match="the commit failed"):
            batcher.submit(2, Finish(_each, ledger))
        assert batcher.submit(3, Finish(_each, ledger))[0] == 30
    assert [[v for v, _ in call] for call in ledger.calls] == [[30]]


def test_the_deadline_never_leaves_work_done_twice_or_lost() -> None:
    """Past its deadline a request not yet finished times out and is never finished later; one
    whose finishing began waits for it and gets the finished value."""
    slow_each = threading.Event()
    seen: list[int] = []

    def each(result: int) -> int:
        seen.append(result)
        if result == 10:
            slow_each.wait(5)  # finishing outlasts the 150 ms deadline
        return result

    def slow(items: list[int]) -> list[int]:
        if 2 in items:
            time.sleep(0.4)  # the batch itself outlasts the deadline
        return [10 * i for i in items]

    with ItemBatcher(slow, max_batch_size=1, timeout_ms=150) as batcher:
        timer = threading.Timer(0.4, slow_each.set)
        timer.start()
        started = time.monotonic()
        assert batcher.submit(1, Finish(each, lambda values: None)) == 10
        assert time.monotonic() - started > 0.3  # waited for its claimed finishing
        with pytest.raises(BatchTimeout, match="batch still running"):
            batcher.submit(2, Finish(each, lambda values: None))
        time.sleep(0.5)  # the batch of 2 ends meanwhile: its result goes unfinished
        assert batcher.submit(3, Finish(each, lambda values: None)) == 30
        timer.cancel()
    assert seen == [10, 30]


def test_slow_finishing_does_not_make_the_candidate_look_stuck() -> None:
    """The stuck-candidate rule (new requests fail at once while every worker has been on one
    batch past the deadline) counts the candidate's own work only: a slow `together` (a store
    taking its time to commit) holds its own callers, not the candidate's name."""
    started = threading.Event()

    def slow_together(values: list[int]) -> None:
        started.set()
        time.sleep(0.5)  # past the 150 ms deadline

    with ItemBatcher(lambda items: [10 * i for i in items], max_batch_size=1,
                     timeout_ms=150) as batcher:
        first: dict[str, object] = {}
        caller = threading.Thread(target=lambda: first.update(
            r=batcher.submit(1, Finish(lambda r: r, slow_together))))
        caller.start()
        assert started.wait(5)
        time.sleep(0.2)  # the worker has been finishing for longer than the deadline
        # Queued behind the finishing, it times out as the store's delay (503, retry), not the
        # candidate's (a BatchTimeout, counted against it), and not as a stuck candidate.
        with pytest.raises(FinishingBacklog, match="still being recorded") as refused:
            batcher.submit(2)
        assert refused.value.status == 503
        assert (batcher.backlogged, batcher.timed_out) == (1, 0)
        caller.join(5)
        assert first["r"] == 10  # its finishing began: its caller got the finished value
        assert batcher.submit(3) == 30


def test_a_slow_candidate_behind_quick_finishing_is_the_candidates_timeout() -> None:
    """The same queueing behind a slow batch call (finishing quick) stays the candidate's."""
    def slow(items: list[int]) -> list[int]:
        time.sleep(0.3)
        return [10 * i for i in items]

    with ItemBatcher(slow, max_batch_size=1, timeout_ms=150) as batcher:
        results = concurrently(2, lambda i: batcher.submit(i, Finish(lambda r: r, len)))
        assert all(isinstance(r, BatchTimeout) for r in results.values()), results
        assert {r.message.split("(")[-1] for r in results.values()} == {
            "its batch still running)", "waiting for its batch)"}
        assert (batcher.backlogged, batcher.timed_out) == (0, 2)
