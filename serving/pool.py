"""Loaded candidates, ready to serve, each behind the one Servable interface (serving.servable):
a local bundle run by its stages, an image pipeline bundle whose networks run on the manifest's
backend (serving.pipelines), or a remote Open Inference Protocol endpoint called over a pooled
client. Every candidate is a registered bundle; the pool names no particular workload."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from time import monotonic  # one name: a test moves the pool's clock alone
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
# A version no request has asked for this long is unloaded, unless it is its candidate's newest
# active one (what a request naming no version gets, kept warm however quiet the night). Looked
# for at most every SWEEP_EVERY_S, and closed one look later: a request that took the
# servable just before it was let go has long finished with it by then.
IDLE_UNLOAD_S = 600.0
SWEEP_EVERY_S = 60.0
# Registry `pipeline.kind` of candidates registered from a bundle manifest.
BUNDLE_KINDS = ("bundle", "remote")

log = logging.getLogger(__name__)


class CandidatePool:
    """Loads each candidate version once, on first use, and keeps it while it is used;
    thread-safe.

    `get(name, version)` serves that version (an experiment's pinned one); `get(name)` the
    newest active version, looked up again at most every `refresh_s` seconds, so a newly
    registered version is served without a restart while versions in use stay loaded. A
    version superseded or retired and asked for by nobody for IDLE_UNLOAD_S is unloaded (its
    sessions, batcher threads and connections): a service that saw a hundred versions go by
    held them all otherwise.
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
        self._used: dict[tuple[str, str], float] = {}  # when each version was last asked for
        self._swept = monotonic()
        self._letting_go: list[Servable] = []  # unloaded at the last look, closed at the next

    def get(self, name: str, version: str | None = None) -> Servable:
        return self.versioned(name, version)[1]

    def versioned(self, name: str, version: str | None = None) -> tuple[str, Servable]:
        """The version served (the one asked for, else the newest active) and its servable."""
        key = (name, version or self._newest_version(name))
        now = monotonic()
        if now - self._swept > SWEEP_EVERY_S:
            self._sweep(now)
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
        # Marked once taken (a load may have taken minutes): a sweep may come between; see _sweep.
        self._used[key] = monotonic()
        return key[1], loaded

    def _sweep(self, now: float) -> None:
        """Close what the last look let go; let go the idle versions no request naming no
        version would get (one registry read, at most every SWEEP_EVERY_S).

        A request takes a servable from `_loaded` and then marks it used, so a sweep between
        the two may let go the one it holds: it is closed only at the next look, after the
        request is long done with it (a later request loads the version again)."""
        with self._lock:
            if now - self._swept <= SWEEP_EVERY_S:
                return  # another thread looks
            self._swept = now
            closing, self._letting_go = self._letting_go, []
            used = dict(self._used)  # one copy: requests mark theirs without the lock
            idle = [k for k in self._loaded if now - used.get(k, now) > IDLE_UNLOAD_S]
            for key in used.keys() - self._loaded.keys():
                self._used.pop(key, None)  # let go, then marked by a request in flight
        for servable in closing:
            servable.close()
        if not idle:
            return
        try:
            newest = {c.name: c.version for c in self.registry.list()}  # by id: newest last
        except Exception:  # the store busy or gone: keep them all until the next look
            log.warning("the candidate pool could not read the registry; nothing unloaded",
                        exc_info=True)
            return
        with self._lock:
            for key in idle:
                if newest.get(key[0]) == key[1] or now - self._used.get(key, now) \
                        <= IDLE_UNLOAD_S or key not in self._loaded:
                    continue
                self._letting_go.append(self._loaded.pop(key))
                self._loading.pop(key, None)
                self._used.pop(key, None)
                log.info("candidate %s version %s unloaded: superseded or retired, and asked "
                         "for by no request in %.0f s", key[0], key[1], IDLE_UNLOAD_S)

    def _newest_version(self, name: str) -> str:
        now = monotonic()
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
            for candidate in [*self._letting_go, *self._loaded.values()]:
                candidate.close()
            self._loaded.clear()
            self._letting_go.clear()


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
