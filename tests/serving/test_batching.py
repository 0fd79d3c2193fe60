"""Dynamic batching under real thread concurrency: sizes, delay, ordering, isolation, shutdown."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from serving.batching import (
    BatcherClosed,
    BatchOutputError,
    BatchTimeout,
    DynamicBatcher,
    ItemBatcher,
)


def concurrently(count: int, target) -> dict[int, object]:
    """Run target(i) for i in range(count) on as many threads released together."""
    results: dict[int, object] = {}
    barrier = threading.Barrier(count)

    def call(i: int) -> None:
        barrier.wait()
        try:
            results[i] = target(i)
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            results[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return results


class Recorder:
    """A batch function that records each call's size and answers row -> 10 * row."""

    def __init__(self, delay: float = 0.0, poison: float | None = None) -> None:
        self.delay, self.poison = delay, poison
        self.calls: list[int] = []
        self.running = self.most_at_once = 0
        self._lock = threading.Lock()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.calls.append(len(batch))
        with self._lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        time.sleep(self.delay)
        with self._lock:
            self.running -= 1
        if self.poison is not None and (batch == self.poison).any():
            raise ValueError(f"poisoned input {self.poison}")
        return batch * 10


def test_concurrent_requests_form_full_batches_and_get_their_own_rows():
    fn = Recorder(delay=0.01)
    with DynamicBatcher(fn, max_batch_size=8, max_batch_time_ms=200) as batcher:
        results = concurrently(32, lambda i: batcher.submit(np.array([[i, -i]], np.float32)))
    for i in range(32):
        np.testing.assert_array_equal(results[i], [[10 * i, -10 * i]])
    assert sum(fn.calls) == 32 and max(fn.calls) == 8
    assert len(fn.calls) <= 6  # 32 single-item requests in ~4 batches, not 32 calls
    assert batcher.batch_sizes[8] >= 3


def test_multi_item_requests_keep_their_rows_in_order():
    fn = Recorder()
    with DynamicBatcher(fn, max_batch_size=16, max_batch_time_ms=50) as batcher:
        results = concurrently(
            12, lambda i: batcher.submit(np.arange(i * 3, i * 3 + 3, dtype=np.int64)[:, None])
        )
    for i in range(12):
        np.testing.assert_array_equal(results[i][:, 0], np.arange(i * 3, i * 3 + 3) * 10)
    assert all(size <= 16 for size in fn.calls) and sum(fn.calls) == 36


def test_lone_request_waits_at_most_the_max_delay():
    with DynamicBatcher(Recorder(), max_batch_size=32, max_batch_time_ms=100) as batcher:
        start = time.monotonic()
        batcher.submit(np.ones((1, 2)))
        waited = time.monotonic() - start
    assert 0.09 <= waited < 0.6


def test_full_batch_does_not_wait_for_the_delay():
    with DynamicBatcher(Recorder(), max_batch_size=4, max_batch_time_ms=5000) as batcher:
        start = time.monotonic()
        results = concurrently(4, lambda i: batcher.submit(np.full((1, 1), i)))
        elapsed = time.monotonic() - start
    assert elapsed < 2.0 and all(isinstance(r, np.ndarray) for r in results.values())


def test_zero_delay_batches_only_what_is_already_queued():
    fn = Recorder(delay=0.02)
    with DynamicBatcher(fn, max_batch_size=64, max_batch_time_ms=0) as batcher:
        start = time.monotonic()
        batcher.submit(np.ones((1, 1)))
        assert time.monotonic() - start < 0.5
        concurrently(16, lambda i: batcher.submit(np.full((1, 1), i)))
    assert sum(fn.calls) == 17 and max(fn.calls) > 1


def test_one_poisoned_input_fails_alone_among_16_concurrent_requests():
    fn = Recorder(delay=0.005, poison=7.0)
    with DynamicBatcher(fn, max_batch_size=16, max_batch_time_ms=500) as batcher:
        results = concurrently(16, lambda i: batcher.submit(np.full((1, 3), float(i))))
    bad = results.pop(7)
    assert isinstance(bad, ValueError) and "poisoned input 7" in str(bad)
    assert len(results) == 15
    for i, result in results.items():
        np.testing.assert_array_equal(result, np.full((1, 3), 10.0 * i))
    assert batcher.retried_batches >= 1


def test_a_batch_function_returning_wrong_rows_fails_each_caller_clearly():
    def broken(batch: np.ndarray) -> np.ndarray:
        return batch[:1]

    with DynamicBatcher(broken, max_batch_size=4, max_batch_time_ms=50) as batcher:
        results = concurrently(4, lambda i: batcher.submit(np.full((2, 1), i)))
    assert all(isinstance(r, BatchOutputError) for r in results.values())
    assert "one row per input row" in str(results[0])


def test_requests_of_different_shapes_are_never_merged():
    fn = Recorder()
    with DynamicBatcher(fn, max_batch_size=8, max_batch_time_ms=100) as batcher:
        results = concurrently(
            8,
            lambda i: batcher.submit(np.full((1, 2 if i % 2 else 3), i, dtype=np.float32)),
        )
    for i, result in results.items():
        assert result.shape == (1, 2 if i % 2 else 3) and (result == 10 * i).all()
    assert sorted(fn.calls) == [4, 4]


def test_oversized_request_runs_as_its_own_batch():
    fn = Recorder()
    with DynamicBatcher(fn, max_batch_size=4, max_batch_time_ms=10) as batcher:
        out = batcher.submit(np.arange(10)[:, None])
    np.testing.assert_array_equal(out[:, 0], np.arange(10) * 10)
    assert fn.calls == [10]


def test_close_finishes_queued_requests_then_refuses_new_ones():
    fn = Recorder(delay=0.01)
    batcher = DynamicBatcher(fn, max_batch_size=4, max_batch_time_ms=10_000)
    results: dict[int, np.ndarray] = {}

    def call(i: int) -> None:
        results[i] = batcher.submit(np.full((1, 1), i))

    threads = [threading.Thread(target=call, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    while batcher._queued_items + sum(fn.calls) < 6:
        time.sleep(0.001)
    start = time.monotonic()
    batcher.close()
    for t in threads:
        t.join(5)
    assert time.monotonic() - start < 2.0  # did not sit out the 10 s delay
    assert sorted(int(r[0, 0]) for r in results.values()) == [10 * i for i in range(6)]
    with pytest.raises(BatcherClosed):
        batcher.submit(np.ones((1, 1)))


def test_rejects_bad_configuration_and_inputs():
    with pytest.raises(ValueError, match="max_batch_size"):
        DynamicBatcher(Recorder(), max_batch_size=0)
    with pytest.raises(ValueError, match="max_batch_time_ms"):
        DynamicBatcher(Recorder(), max_batch_size=2, max_batch_time_ms=-1)
    with DynamicBatcher(Recorder(), max_batch_size=2) as batcher, pytest.raises(ValueError):
        batcher.submit(np.ones((0, 2)))


def test_two_workers_run_batches_at_once_and_keep_rows_straight():
    fn = Recorder(delay=0.1)
    with DynamicBatcher(fn, max_batch_size=4, max_batch_time_ms=20, workers=2) as batcher:
        results = concurrently(16, lambda i: batcher.submit(np.full((1, 1), i)))
    assert all(int(results[i][0, 0]) == 10 * i for i in range(16))
    assert sum(fn.calls) == 16 and max(fn.calls) <= 4
    # Batches ran in two lanes at once (seen by the function itself, not by a wall clock a
    # busy machine can stretch), and never in more.
    assert fn.most_at_once == 2
    with pytest.raises(ValueError, match="workers"):
        DynamicBatcher(Recorder(), max_batch_size=2, workers=0)


def test_item_batcher_merges_requests_of_any_shape_and_isolates_failures():

    calls: list[int] = []

    def fn(items: list[np.ndarray]) -> list[int]:
        calls.append(len(items))
        time.sleep(0.01)
        if any(item.size == 0 for item in items):
            raise ValueError("empty image")
        return [int(item.sum()) for item in items]

    with ItemBatcher(fn, max_batch_size=8, max_batch_time_ms=50) as batcher:
        shapes = [np.ones((i + 1, 2 * i + 3)) for i in range(16)]
        shapes[5] = np.ones((0, 4))
        results = concurrently(16, lambda i: batcher.submit(shapes[i]))
        for i in range(16):
            if i == 5:
                assert isinstance(results[i], ValueError)
            else:
                assert results[i] == shapes[i].size
        assert max(calls) == 8  # different item shapes still merged
        assert batcher.submit_many([np.ones((2, 2)), np.ones((1, 3))]) == [4, 3]
        with pytest.raises(ValueError):
            batcher.submit_many([])
    with pytest.raises(BatcherClosed):
        batcher.submit(np.ones(1))


def test_item_batcher_refuses_a_wrong_number_of_results():
    from serving.batching import ItemBatcher

    with (ItemBatcher(lambda items: items[:-1], max_batch_size=4) as batcher,
          pytest.raises(BatchOutputError, match="one result per item")):
        batcher.submit(1)


def _caught(fn, *args):  # noqa: ANN001, ANN202 - what fn returned, or what it raised
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - the test inspects it
        return exc


def test_a_deadline_bounds_each_caller_and_a_stuck_batch_fails_new_requests_at_once():
    """A batch function that never returns once held every caller of the candidate for ever
    (and with them the service's request threads). Now each waits at most the deadline, queued
    requests leave the queue, and while the worker stays stuck new ones fail at once."""
    release = threading.Event()

    def stuck_on_nine(batch: list[int]) -> list[int]:
        if 9 in batch:
            release.wait(20)
        return [10 * item for item in batch]

    batcher = ItemBatcher(stuck_on_nine, max_batch_size=1, timeout_ms=150, name="candidate 'x'")
    try:
        assert batcher.submit(1) == 10
        first: dict[str, object] = {}
        stuck = threading.Thread(target=lambda: first.update(r=_caught(batcher.submit, 9)))
        started = time.monotonic()
        stuck.start()
        while batcher._busy_since[0] is None:  # the stuck batch is running
            time.sleep(0.001)
        queued = _caught(batcher.submit, 2)
        stuck.join(5)
        waited = time.monotonic() - started
        results = [first["r"], queued]
        assert all(isinstance(r, BatchTimeout) for r in results), results
        assert 0.14 < waited < 1.5, waited
        assert "batch still running" in results[0].message
        assert "waiting for its batch" in results[1].message
        assert all("candidate 'x' gave no answer within 150 ms" in r.message for r in results)
        assert batcher._queued_items == 0 and not batcher._queue  # the waiter left the queue

        started = time.monotonic()
        with pytest.raises(BatchTimeout, match=r"running one batch for \d"):
            batcher.submit(3)
        assert time.monotonic() - started < 0.1  # at once, not after the deadline
        assert batcher.timed_out == 3

        release.set()
        deadline = time.monotonic() + 5
        while batcher._busy_since[0] is not None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert batcher.submit(4) == 40  # it serves again by itself
    finally:
        release.set()
        batcher.close()


def test_a_caller_gone_before_its_batch_formed_leaves_the_worker_serving():
    """Its deadline came before the batch's wait ended, so it left the queue empty: the worker
    then took from the empty queue and died, and every later caller timed out, a full batch
    too. Now the worker waits for the next request."""
    batcher = ItemBatcher(lambda batch: [10 * item for item in batch], max_batch_size=2,
                          max_batch_time_ms=400, timeout_ms=100, name="candidate 'y'")
    try:
        with pytest.raises(BatchTimeout, match="waiting for its batch"):
            batcher.submit(1)  # alone: its batch waits 400 ms to fill, its caller 100 ms
        time.sleep(0.5)  # the batch's wait is over
        assert batcher.submit_many([2, 3]) == [20, 30]  # a full batch: runs at once
    finally:
        batcher.close()


def test_a_stuck_worker_leaves_the_others_serving_and_shutdown_does_not_wait_for_it():
    release = threading.Event()

    def maybe_stuck(batch: list[int]) -> list[int]:
        if 9 in batch:
            release.wait(20)
        return [10 * item for item in batch]

    batcher = ItemBatcher(maybe_stuck, max_batch_size=1, workers=2, timeout_ms=150)
    with pytest.raises(BatchTimeout):
        batcher.submit(9)
    assert [batcher.submit(i) for i in range(5)] == [0, 10, 20, 30, 40]  # the other worker
    started = time.monotonic()
    batcher.close()
    assert time.monotonic() - started < 1.0  # joins each worker for at most the deadline
    release.set()
    with pytest.raises(ValueError, match="timeout_ms must be positive"):
        ItemBatcher(maybe_stuck, max_batch_size=1, timeout_ms=0)
