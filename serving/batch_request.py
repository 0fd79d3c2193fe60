"""One caller's request to a batcher (serving.batching), and what the worker does with its result
before the caller wakes.

Finishing on the worker: a caller may pass a :class:`Finish`, whose `each` the worker runs on the
request's result and `together` once for the batch's finished values, before it wakes the
callers (the serving path builds each prediction's record there and commits the batch's records
in one write). The caller then wakes once, as it would for the bare result: on a busy server a
second hand-off (to a group commit and back) cost more CPU than the write itself. A request whose
finishing has begun is no longer abandoned at its deadline: its caller waits for the finished
value, so work done for it is never done twice. Finishing is not the candidate's time: the
stuck-candidate rule (serving.batching) counts the batch call only. While a worker finishes, its
next batch waits, so a store stalled past the deadline times out the requests queued behind it:
a request whose wait was mostly its workers finishing earlier answers gets a FinishingBacklog
(503, retry), the store's delay, which the serving path neither records nor counts against the
candidate; otherwise its timeout is the candidate's (a BatchTimeout, 504, counted).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.errors import AbvocError


class BatcherClosed(AbvocError):
    """The batcher is shutting down and takes no new requests."""

    status = 503


class BatchTimeout(AbvocError):
    """No answer within the batcher's deadline: the candidate's failure, not the caller's."""

    status = 504


class FinishingBacklog(AbvocError):
    """The deadline passed while the request's workers were mostly finishing earlier answers
    (committing their records): the store's delay, not the candidate's failure."""

    status = 503
    headers = (("Retry-After", "2"),)


@dataclass(frozen=True)
class Finish:
    """Work on a request's result done by the batcher's worker before the caller wakes:
    `each(result)` per request (what it returns is what the caller gets; what it raises, the
    caller's error), then `together(values)` once per batch for the requests that share it."""

    each: Callable[[Any], Any]
    together: Callable[[list[Any]], None]

    def after(self, first: Callable[[Any], Any]) -> Finish:
        """This finish on `first(result)`: a candidate's own step on its batch output (its
        answer) runs before the caller's, still on the worker."""
        each = self.each
        return Finish(lambda result: each(first(result)), self.together)

    def alone(self, result: Any) -> Any:
        """Finish one result on the calling thread (a candidate without a batcher)."""
        value = self.each(result)
        self.together([value])
        return value


class BatchRequest:
    """One caller's input and, once its batch ran, its rows (or its finished value) or its
    error.

    The caller blocks on a lock the worker releases: cheaper than an Event, which matters when
    the batcher's own overhead per request is compared with a sub-millisecond network call.
    `finish` is the caller's Finish; `claimed` is set (under the batcher's condition) once the
    worker starts finishing it, `abandoned` once its caller gave up: whichever comes first wins.
    """

    __slots__ = ("inputs", "arrived", "signature", "result", "error", "_done", "finish_with",
                 "claimed", "abandoned", "finishing_seen")

    def __init__(self, inputs: Any, arrived: float, signature: object,
                 finish_with: Finish | None = None, finishing_seen: float = 0.0) -> None:
        self.inputs = inputs
        self.arrived = arrived
        # The workers' finishing time (FinishingClock.spent) when it arrived.
        self.finishing_seen = finishing_seen
        self.signature = signature
        self.finish_with = finish_with
        self.claimed = False
        self.abandoned = False
        self.result: Any = None
        self.error: BaseException | None = None
        self._done = threading.Lock()
        self._done.acquire()

    def finish(self, result: Any = None, error: BaseException | None = None) -> None:
        self.result, self.error = result, error
        self._done.release()

    def wait(self, timeout: float | None = None) -> bool:
        """True once finished; False when `timeout` seconds passed first."""
        return self._done.acquire(timeout=-1 if timeout is None else timeout)

    def finished(self) -> bool:
        return self._done.acquire(blocking=False)


class FinishingClock:
    """How long a batcher's workers have spent finishing (not running the candidate), so a
    request that missed its deadline can tell whose delay it was.

    Each worker writes only its own slot, so no lock: a reader may miss or double-count a
    finishing that ends while it reads, which moves the share by one commit's time."""

    def __init__(self, workers: int) -> None:
        self._total = [0.0] * workers
        self._since: list[float | None] = [None] * workers

    def start(self, index: int, now: float) -> None:
        self._since[index] = now

    def stop(self, index: int, now: float) -> None:
        since = self._since[index]
        if since is not None:
            self._total[index] += now - since
            self._since[index] = None

    def spent(self, now: float) -> float:
        """Seconds of finishing so far, all workers together (ongoing ones up to `now`)."""
        ongoing = sum(now - since for since in self._since if since is not None)
        return sum(self._total) + ongoing

    def mostly_finishing(self, request: BatchRequest, now: float) -> bool:
        """Whether the workers spent at least half of the request's wait finishing."""
        waited = now - request.arrived
        finishing = (self.spent(now) - request.finishing_seen) / len(self._total)
        return waited > 0 and finishing >= waited / 2
