"""Dynamic batching: merge concurrent requests into one batch call, hand each caller its own rows.

Request threads (the Flask app's) call :meth:`DynamicBatcher.submit` with a batch of one or more
items and block. A worker thread takes the oldest request, waits until either the queued items
reach ``max_batch_size`` or ``max_batch_time_ms`` has passed since that request arrived, then
concatenates the requests along the first axis, calls the batch function once and splits its
output back by each request's item count. With ``workers > 1`` one batch can form while others
run (for backends whose single call leaves the CPU or GPU part idle); only one worker forms a
batch at a time, so the deadline of the oldest request is always kept.

Only requests with the same item shape and dtype are merged; others wait for the next batch, in
arrival order. A request bigger than ``max_batch_size`` runs as a batch of its own.

Failure isolation: when the batch call raises (or returns the wrong number of rows), each request
of that batch is retried on its own, so a poisoned input fails only its own caller and its
batch-mates still get their results.

Deadline: with ``timeout_ms`` a caller waits at most that long from arrival to its rows, queueing
included; then its request is dropped from the queue (or its rows, still being computed, are
dropped when they come) and it gets a BatchTimeout (504), or a FinishingBacklog (503) when its
workers spent most of its wait finishing earlier requests (serving.batch_request). A batch
function that never returns holds its worker for good, so while every worker has been on one
batch longer than the deadline, new requests fail at once instead of queueing behind it: a stuck
candidate costs its callers an error, never a request thread (the serving path records it, and
the error-rate guardrail counts it), and serves again by itself once the batch ends.

Finishing on the worker: a caller may pass a :class:`~serving.batch_request.Finish`, run on its
result by the worker before the caller wakes (see that module).

Shutdown: :meth:`close` refuses new requests, runs what is queued at once, then stops the worker.

:class:`ItemBatcher` does the same for whole requests of any Python objects (``fn(list) ->
list``), e.g. one image pipeline call for the images of many concurrent requests: batching only a
pipeline's networks leaves its per-request work (finding regions, cropping, decoding) unbatched.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any, Generic, TypeVar

import numpy as np

from core.errors import AbvocError
from serving.batch_request import (
    BatcherClosed,
    BatchRequest,
    BatchTimeout,
    Finish,
    FinishingBacklog,
    FinishingClock,
)

__all__ = ["BatchOutputError", "BatchTimeout", "BatcherClosed", "DynamicBatcher",
           "FinishingBacklog", "ItemBatcher"]

BatchFn = Callable[[np.ndarray], np.ndarray]
T = TypeVar("T")
R = TypeVar("R")


class BatchOutputError(AbvocError):
    """The batch function returned something that cannot be split back per request."""

    status = 500


class _Batcher:
    """The queue and workers shared by both batchers; subclasses say how requests merge."""

    def __init__(
        self,
        fn: Callable[[Any], Any],
        *,
        max_batch_size: int,
        max_batch_time_ms: float = 0.0,
        workers: int = 1,
        name: str = "batcher",
        timeout_ms: float | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        if max_batch_time_ms < 0:
            raise ValueError(f"max_batch_time_ms must be >= 0, got {max_batch_time_ms}")
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        if timeout_ms is not None and timeout_ms <= 0:
            raise ValueError(f"timeout_ms must be positive, got {timeout_ms}")
        self._fn = fn
        self.timeout = None if timeout_ms is None else timeout_ms / 1000.0
        self.max_batch_size = max_batch_size
        self.max_batch_time = max_batch_time_ms / 1000.0
        self.name = name
        self._queue: collections.deque[BatchRequest] = collections.deque()
        self._queued_items = 0
        self._cond = threading.Condition()
        self._forming = threading.Lock()  # one worker forms a batch while others may be running
        self._closed = False
        self.batch_sizes: collections.Counter[int] = collections.Counter()
        """How many batches of each item count ran (retries of single requests not counted)."""
        self.retried_batches = 0
        self.timed_out = 0
        """How many callers got a BatchTimeout (queued too long, or refused while stuck)."""
        self.backlogged = 0
        """How many callers got a FinishingBacklog (their wait was mostly finishing's)."""
        self._finishing = FinishingClock(workers)
        # When each worker's current batch started; None while it forms or waits for one.
        self._busy_since: list[float | None] = [None] * workers
        self._workers = [
            threading.Thread(target=self._loop, args=(i,), name=f"batcher-{name}-{i}",
                             daemon=True)
            for i in range(workers)
        ]
        for worker in self._workers:
            worker.start()

    @property
    def closed(self) -> bool:
        return self._closed

    def _submit(self, inputs: Any, signature: object, finish: Finish | None = None) -> Any:
        """This request's share of the batch output (with `finish`, what its `each` made of
        it); blocks until its batch has run."""
        now = time.monotonic()
        request = BatchRequest(inputs, now, signature, finish,
                               0.0 if self.timeout is None else self._finishing.spent(now))
        with self._cond:
            if self._closed:
                raise BatcherClosed(f"batcher {self.name!r} is shut down")
            self._refuse_while_stuck(request.arrived)
            # Wake the worker only when it has something new to decide: the queue was empty
            # (it waits for a first request) or a full batch is now queued (it stops waiting).
            wake = not self._queue
            self._queue.append(request)
            self._queued_items += len(inputs)
            if wake or self._queued_items >= self.max_batch_size:
                self._cond.notify()
        if not request.wait(self.timeout):
            self._abandon(request)
        if request.error is not None:
            raise request.error
        assert request.result is not None
        return request.result

    def _refuse_while_stuck(self, now: float) -> None:
        """Fail at once while every worker has been on one batch past the deadline (called
        holding the condition's lock)."""
        if self.timeout is None or not all(
                since is not None and now - since > self.timeout for since in self._busy_since):
            return
        self.timed_out += 1
        started = min(s for s in self._busy_since if s is not None)
        raise BatchTimeout(f"{self.name} gave no answer within {self.timeout * 1000:g} ms: it "
                           f"has been running one batch for {now - started:.1f} s, and its "
                           "requests fail at once until that batch ends")

    def _abandon(self, request: BatchRequest) -> None:
        """The deadline passed: take the request off the queue (or leave its rows, still being
        computed, to nobody) and raise, unless its rows came in just now."""
        with self._cond:
            if request.finished():
                return
            if not request.claimed:
                request.abandoned = True
                try:
                    self._queue.remove(request)
                    self._queued_items -= len(request.inputs)
                    where = "waiting for its batch"
                except ValueError:
                    where = "its batch still running"
                backlog = self._finishing.mostly_finishing(request, time.monotonic())
                if backlog:
                    self.backlogged += 1
                else:
                    self.timed_out += 1
        if request.claimed:  # its rows came and are being finished: that work is its answer
            request.wait()
            return
        assert self.timeout is not None
        if backlog:
            raise FinishingBacklog(
                f"no answer within {self.timeout * 1000:g} ms: the answers before this one "
                "are still being recorded (the store is slow); try again shortly")
        raise BatchTimeout(f"{self.name} gave no answer within {self.timeout * 1000:g} ms "
                           f"({where})")

    def close(self, timeout: float | None = None) -> None:
        """Refuse new requests, finish the queued ones, stop the worker. Waits for each
        worker up to `timeout` seconds (default: the request deadline, if any), so a batch that
        never returns cannot hold up shutdown."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if timeout is None:
            timeout = self.timeout
        for worker in self._workers:
            if worker is not threading.current_thread():
                worker.join(timeout)

    def __enter__(self) -> _Batcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- worker ---------------------------------------------------------------------------

    def _loop(self, index: int) -> None:
        while True:
            with self._forming:
                batch = self._next_batch()
            if batch is None:
                return
            self._busy_since[index] = time.monotonic()
            try:
                done = self._run(batch)
            finally:
                self._busy_since[index] = None
            # Finishing is the callers' work, not the candidate's: a slow store never makes the
            # candidate look stuck (its new requests failing at once as its failures).
            self._finishing.start(index, time.monotonic())
            try:
                self._deliver(done)
            finally:
                self._finishing.stop(index, time.monotonic())

    def _next_batch(self) -> list[BatchRequest] | None:
        """Wait for a full batch or the head request's deadline; None once closed and drained.
        A queue its callers left meanwhile (their deadline came first) is waited on anew."""
        with self._cond:
            while True:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return None
                deadline = self._queue[0].arrived + self.max_batch_time
                while self._queued_items < self.max_batch_size and not self._closed and (
                        remaining := deadline - time.monotonic()) > 0:
                    self._cond.wait(remaining)
                if self._queue:
                    return self._take()

    def _take(self) -> list[BatchRequest]:
        """The head request plus later ones of the same signature, up to the size limit."""
        head = self._queue.popleft()
        taken, size, keep = [head], len(head.inputs), collections.deque()
        while self._queue:
            request = self._queue.popleft()
            fits = size + len(request.inputs) <= self.max_batch_size
            if fits and request.signature == head.signature:
                taken.append(request)
                size += len(request.inputs)
            else:
                keep.append(request)
            if size >= self.max_batch_size:
                break
        keep.extend(self._queue)
        self._queue = keep
        self._queued_items -= size
        self.batch_sizes[size] += 1
        return taken

    def _run(self, requests: list[BatchRequest]) -> list[tuple[BatchRequest, Any]]:
        """Run one batch: each request with its rows (a failed one is finished with its error
        here)."""
        counts = [len(r.inputs) for r in requests]
        try:
            inputs = requests[0].inputs
            if len(requests) > 1:
                inputs = self._merge([r.inputs for r in requests])
            outputs = self._call(inputs)
        except Exception as exc:  # noqa: BLE001 - the error belongs to the callers
            if len(requests) == 1:
                requests[0].finish(error=exc)
                return []
            with self._cond:
                self.retried_batches += 1
            return [one for request in requests for one in self._run_alone(request)]
        start = 0
        done = []
        for request, count in zip(requests, counts, strict=True):
            done.append((request, outputs[start : start + count]))
            start += count
        return done

    def _run_alone(self, request: BatchRequest) -> list[tuple[BatchRequest, Any]]:
        try:
            return [(request, self._call(request.inputs))]
        except Exception as exc:  # noqa: BLE001 - handed to this request's caller
            request.finish(error=exc)
            return []

    def _deliver(self, done: list[tuple[BatchRequest, Any]]) -> None:
        """Hand each request its result; for one with a Finish whose caller still waits, what
        its `each` makes of it, after the `together` of those that share one."""
        with self._cond:
            for request, _result in done:
                request.claimed = request.finish_with is not None and not request.abandoned
        groups: dict[Callable[[list[Any]], None], list[tuple[BatchRequest, Any]]] = {}
        for request, result in done:
            if not request.claimed:
                request.finish(result=result)
                continue
            assert request.finish_with is not None
            try:
                value = request.finish_with.each(result)
            except Exception as exc:  # noqa: BLE001 - handed to this request's caller
                request.finish(error=exc)
                continue
            groups.setdefault(request.finish_with.together, []).append((request, value))
        for together, members in groups.items():
            try:
                together([value for _request, value in members])
            except Exception as exc:  # noqa: BLE001 - handed to these requests' callers
                for request, _value in members:
                    request.finish(error=exc)
                continue
            for request, value in members:
                request.finish(result=value)

    def _merge(self, inputs: list[Any]) -> Any:
        raise NotImplementedError

    def _call(self, inputs: Any) -> Any:
        raise NotImplementedError


class DynamicBatcher(_Batcher):
    """Collects concurrent `submit` calls into batches for one batch function (one network)."""

    def __init__(self, fn: BatchFn, *, max_batch_size: int, max_batch_time_ms: float = 0.0,
                 workers: int = 1, name: str = "batcher",
                 timeout_ms: float | None = None) -> None:
        super().__init__(fn, max_batch_size=max_batch_size, max_batch_time_ms=max_batch_time_ms,
                         workers=workers, name=name, timeout_ms=timeout_ms)

    def submit(self, inputs: np.ndarray) -> np.ndarray:
        """This request's rows of the batch output; blocks until its batch has run."""
        if not isinstance(inputs, np.ndarray) or inputs.ndim < 1 or len(inputs) == 0:
            raise ValueError("submit() takes a numpy array with at least one item on axis 0")
        return self._submit(inputs, (inputs.dtype.str, inputs.shape[1:]))

    def _merge(self, inputs: list[Any]) -> np.ndarray:
        return np.concatenate(inputs)

    def _call(self, inputs: np.ndarray) -> np.ndarray:
        outputs = self._fn(inputs)
        if not isinstance(outputs, np.ndarray) or outputs.ndim < 1 or len(outputs) != len(inputs):
            shape = getattr(outputs, "shape", type(outputs).__name__)
            raise BatchOutputError(
                f"batch function of {self.name!r} returned {shape} for {len(inputs)} input rows; "
                "it must return one row per input row"
            )
        return outputs


class ItemBatcher(_Batcher, Generic[T, R]):
    """Batches whole requests of any Python objects: ``fn(list of items) -> list of results``.

    For work whose per-call cost is more than one network: an image pipeline whose `predict`
    takes a list of images of different sizes and shares its per-call work (one recognizer
    and one aligner batch, one dispatch) among them. Items are never concatenated, so any
    item shape merges with any other.
    """

    def __init__(self, fn: Callable[[list[T]], Sequence[R]], *, max_batch_size: int,
                 max_batch_time_ms: float = 0.0, workers: int = 1,
                 name: str = "batcher", timeout_ms: float | None = None) -> None:
        super().__init__(fn, max_batch_size=max_batch_size, max_batch_time_ms=max_batch_time_ms,
                         workers=workers, name=name, timeout_ms=timeout_ms)

    def submit(self, item: T, finish: Finish | None = None) -> Any:
        """The result for one item (with `finish`, what its `each` made of it); blocks until
        its batch has run."""
        if finish is None:
            return self._submit([item], None)[0]
        return self._submit([item], None, finish.after(itemgetter(0)))

    def submit_many(self, items: Sequence[T]) -> list[R]:
        """Results for several items of one caller, in order; they stay in one batch."""
        if len(items) == 0:
            raise ValueError("submit_many() takes at least one item")
        return self._submit(list(items), None)

    def _merge(self, inputs: list[Any]) -> list[T]:
        return [item for items in inputs for item in items]

    def _call(self, inputs: list[T]) -> list[R]:
        outputs = self._fn(inputs)
        if not isinstance(outputs, Sequence) or len(outputs) != len(inputs):
            size = len(outputs) if isinstance(outputs, Sequence) else type(outputs).__name__
            raise BatchOutputError(
                f"batch function of {self.name!r} returned {size} results for {len(inputs)} "
                "items; it must return one result per item"
            )
        return list(outputs)
