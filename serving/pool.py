"""Loaded candidates, ready to serve, each behind the one Servable interface (serving.servable):
a local bundle run by its stages, an image pipeline bundle whose networks run on the manifest's
backend (serving.pipelines), or a remote Open Inference Protocol endpoint called over a pooled
client. Every candidate is a registered bundle; the pool names no particular workload."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.errors import AbvocError
from serving.backends import BackendSettings, get_backend
from serving.bundles import BundleRunner, load_manifest
from serving.bundles.validate import validate_bundle
from serving.pipelines import ImageCandidate
from serving.registry import CandidateInfo, Registry
from serving.remote import RemoteClient
from serving.servable import BundleCandidate, RemoteCandidate, Servable

DEFAULT_SHADOW_QUEUE = 64
DEFAULT_REFRESH_S = 5.0
# Registry `pipeline.kind` of candidates registered from a bundle manifest.
BUNDLE_KINDS = ("bundle", "remote")

log = logging.getLogger(__name__)


class CandidatePool:
    """Loads each candidate version once, on first use, and keeps it; thread-safe.

    `get(name, version)` serves that version (an experiment's pinned one); `get(name)` the
    newest active version, looked up again at most every `refresh_s` seconds, so a newly
    registered version is served without a restart while versions in use stay loaded.
    """

    def __init__(self, registry: Registry, models_dir: Path, *, remote_pool_size: int = 16,
                 refresh_s: float = DEFAULT_REFRESH_S) -> None:
        self.registry = registry
        self.models_dir = Path(models_dir)
        self.remote_pool_size = remote_pool_size
        self.refresh_s = refresh_s
        self._loaded: dict[tuple[str, str], Servable] = {}
        self._newest: dict[str, tuple[float, str]] = {}
        self._loading: dict[tuple[str, str], threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, name: str, version: str | None = None) -> Servable:
        return self.versioned(name, version)[1]

    def versioned(self, name: str, version: str | None = None) -> tuple[str, Servable]:
        """The version served (the one asked for, else the newest active) and its servable."""
        key = (name, version or self._newest_version(name))
        loaded = self._loaded.get(key)
        if loaded is None:
            # One lock per version: a slow load (a TensorRT engine build, a large model) holds
            # up that version's first requests only, never the other candidates'.
            with self._lock:
                loading = self._loading.setdefault(key, threading.Lock())
            with loading:
                loaded = self._loaded.get(key) or self._load(*key)
                with self._lock:
                    self._loaded[key] = loaded
        return key[1], loaded

    def _newest_version(self, name: str) -> str:
        now = time.monotonic()
        known = self._newest.get(name)
        if known is None or now - known[0] > self.refresh_s:
            known = (now, self.registry.get(name).version)
            self._newest[name] = known
        return known[1]

    def _load(self, name: str, version: str) -> Servable:
        info = self.registry.get(name, version)
        if info.pipeline.get("kind") not in BUNDLE_KINDS:
            raise AbvocError(f"candidate {name!r} version {info.version!r} was registered "
                             "before bundles; register it again as a bundle (`abvoc train "
                             "NAME` for a reference workload)", status=503)
        return self._load_bundle(info)

    def _load_bundle(self, info: CandidateInfo) -> Servable:
        folder = Path(info.artifacts)
        if not folder.is_dir():
            raise AbvocError(f"candidate {info.name!r} version {info.version!r}: its bundle "
                             f"folder {folder} is missing; register the bundle again", status=503)
        manifest = load_manifest(folder)
        if manifest.remote is not None:
            return RemoteCandidate(manifest, RemoteClient.from_spec(manifest.remote,
                                                                    self.remote_pool_size))
        if manifest.takes_images:
            _, stages = validate_bundle(folder)
            backend = get_backend(manifest.backend, BackendSettings(
                device=manifest.device, cache_dir=self.models_dir / ".backend-cache"))
            return ImageCandidate(manifest, stages[0].pipeline, backend)
        return BundleCandidate(BundleRunner.open(folder))

    def names(self) -> list[str]:
        return sorted({name for name, _ in self._loaded})

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
