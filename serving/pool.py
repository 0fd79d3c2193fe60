"""Loaded candidates, ready to serve: one pipeline per candidate on its registered backend, with
concurrent requests batched whole (images) as the candidate's `pipeline.serving` settings say
(`max_batch_size` images, waiting at most `max_batch_time_ms`)."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.errors import AbvocError
from serving.backends import BackendSettings, get_backend
from serving.backends.base import Backend
from serving.ocr.pipeline import BatchedPipeline, Pipeline
from serving.registry import Registry

DEFAULT_BATCHING = {"max_batch_size": 16, "max_batch_time_ms": 2.0}
DEFAULT_SHADOW_QUEUE = 64

log = logging.getLogger(__name__)


class CandidatePool:
    """Loads each candidate once, on first use, and keeps it; thread-safe."""

    def __init__(self, registry: Registry, models_dir: Path) -> None:
        self.registry = registry
        self.models_dir = Path(models_dir)
        self._loaded: dict[str, tuple[BatchedPipeline, Backend]] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> BatchedPipeline:
        loaded = self._loaded.get(name)
        if loaded is None:
            with self._lock:
                loaded = self._loaded.get(name) or self._load(name)
                self._loaded[name] = loaded
        return loaded[0]

    def _load(self, name: str) -> tuple[BatchedPipeline, Backend]:
        info = self.registry.get(name)
        folder = Path(info.artifacts) if info.artifacts else self.models_dir / name
        if not (folder / "candidate.json").exists():
            raise AbvocError(f"candidate {name!r} has no trained artifacts in {folder}; "
                             f"run `abvoc train {name}`", status=503)
        pipeline = Pipeline.load(folder)
        batching: dict[str, Any] = {**DEFAULT_BATCHING,
                                    **(info.pipeline.get("serving") or {})}
        # Whole requests are batched (images), so the networks run unbatched underneath.
        backend = get_backend(info.backend, BackendSettings(
            cache_dir=self.models_dir / ".backend-cache",
        ))
        backend.load(pipeline.networks())
        return pipeline.with_runner(backend).batched(
            int(batching["max_batch_size"]), float(batching["max_batch_time_ms"])), backend

    def names(self) -> list[str]:
        return sorted(self._loaded)

    def close(self) -> None:
        with self._lock:
            for pipeline, backend in self._loaded.values():
                pipeline.close()  # stops its request batcher
                backend.unload()
            self._loaded.clear()


class ShadowQueue:
    """Runs shadow copies off the request path on a few threads, from a bounded queue.

    A full queue drops the new shadow run at once (counted in `dropped`, and `on_drop` is
    called, e.g. a Prometheus counter), so shadows never hold up a served answer and never grow
    memory past `capacity` queued inputs, however slow the shadow candidate is.
    """

    def __init__(self, workers: int = 2, capacity: int = DEFAULT_SHADOW_QUEUE,
                 on_drop: Callable[[], None] | None = None) -> None:
        self.on_drop = on_drop
        self.dropped = 0
        self._queue: queue.Queue[tuple[Callable[..., None], tuple[Any, ...]] | None] = (
            queue.Queue(maxsize=capacity))
        self._lock = threading.Lock()
        self._closed = False
        self._threads = [threading.Thread(target=self._loop, name=f"shadow-{i}", daemon=True)
                         for i in range(workers)]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[..., None], *args: Any) -> bool:
        """Queue one shadow run; False (and counted) when the queue is full or closed."""
        if not self._closed:
            try:
                self._queue.put_nowait((fn, args))
                return True
            except queue.Full:
                pass
        with self._lock:
            self.dropped += 1
        if self.on_drop is not None:
            self.on_drop()
        return False

    def depth(self) -> int:
        return self._queue.qsize()

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                fn, args = item
                fn(*args)
            except Exception:  # a shadow's failure must not stop the other shadows
                log.exception("shadow run failed")
            finally:
                self._queue.task_done()

    def close(self) -> None:
        """Run what is queued, then stop the threads."""
        if self._closed:
            return
        self._closed = True
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()
