"""Loaded candidates, ready to serve, each behind the one Servable interface (serving.servable):
a local bundle run by its stages, a remote Open Inference Protocol endpoint called over a pooled
client, or an image pipeline on its registered backend, whose concurrent requests are batched
whole (images) as its `pipeline.serving` settings say (`max_batch_size` images, waiting at most
`max_batch_time_ms`)."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.errors import AbvocError
from core.latex import tokenize
from serving.backends import BackendSettings, get_backend
from serving.backends.base import Backend
from serving.bundles import BundleRunner, load_manifest
from serving.ocr.pipeline import BatchedPipeline, Pipeline
from serving.registry import CandidateInfo, Registry
from serving.remote import RemoteClient
from serving.servable import IMAGE, Answer, BundleCandidate, RemoteCandidate, Servable

DEFAULT_BATCHING = {"max_batch_size": 16, "max_batch_time_ms": 2.0}
DEFAULT_SHADOW_QUEUE = 64
# Registry `pipeline.kind` of candidates registered from a bundle manifest.
BUNDLE_KINDS = ("bundle", "remote")
_MIDDLE_SCHOOL = {"^", "_", "\\sqrt", "(", ")", "\\alpha", "\\beta", "\\pi", "\\theta"}

log = logging.getLogger(__name__)


def infer_level(latex: str) -> str:
    """'middle' when the output uses middle-school structure, else 'elementary'."""
    tokens = tokenize(latex)
    if _MIDDLE_SCHOOL.intersection(tokens) or tokens.count("\\frac") > 1:
        return "middle"
    return "elementary"


class ImageCandidate:
    """An image pipeline (images in, LaTeX out) and the backend its networks run on."""

    accepts = IMAGE
    output_type = "latex"

    def __init__(self, pipeline: BatchedPipeline, backend: Backend) -> None:
        self.pipeline = pipeline
        self.backend = backend

    def predict(self, payload: Any) -> Answer:
        result = self.pipeline.predict_one(payload)
        return Answer(result.latex, "latex", result.confidence, result.stages,
                      slice=f"unknown/{infer_level(result.latex)}")

    def close(self) -> None:
        self.pipeline.close()  # stops its request batcher
        self.backend.unload()


class CandidatePool:
    """Loads each candidate once, on first use, and keeps it; thread-safe."""

    def __init__(self, registry: Registry, models_dir: Path, *, remote_pool_size: int = 16) -> None:
        self.registry = registry
        self.models_dir = Path(models_dir)
        self.remote_pool_size = remote_pool_size
        self._loaded: dict[str, Servable] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> Servable:
        loaded = self._loaded.get(name)
        if loaded is None:
            with self._lock:
                loaded = self._loaded.get(name) or self._load(name)
                self._loaded[name] = loaded
        return loaded

    def _load(self, name: str) -> Servable:
        info = self.registry.get(name)
        if info.pipeline.get("kind") in BUNDLE_KINDS:
            return self._load_bundle(info)
        return self._load_image_pipeline(info)

    def _load_bundle(self, info: CandidateInfo) -> Servable:
        folder = Path(info.artifacts)
        if not folder.is_dir():
            raise AbvocError(f"candidate {info.name!r} version {info.version!r}: its bundle "
                             f"folder {folder} is missing; register the bundle again", status=503)
        manifest = load_manifest(folder)
        if manifest.remote is not None:
            return RemoteCandidate(manifest, RemoteClient.from_spec(manifest.remote,
                                                                    self.remote_pool_size))
        return BundleCandidate(BundleRunner.open(folder))

    def _load_image_pipeline(self, info: CandidateInfo) -> Servable:
        name = info.name
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
        return ImageCandidate(pipeline.with_runner(backend).batched(
            int(batching["max_batch_size"]), float(batching["max_batch_time_ms"])), backend)

    def names(self) -> list[str]:
        return sorted(self._loaded)

    def close(self) -> None:
        with self._lock:
            for candidate in self._loaded.values():
                candidate.close()
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
