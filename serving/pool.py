"""Loaded candidates, ready to serve: one pipeline per candidate on its registered backend, with
concurrent requests batched whole (images) as the candidate's `pipeline.serving` settings say
(`max_batch_size` images, waiting at most `max_batch_time_ms`)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from core.errors import AbvocError
from serving.backends import BackendSettings, get_backend
from serving.backends.base import Backend
from serving.ocr.pipeline import BatchedPipeline, Pipeline
from serving.registry import Registry

DEFAULT_BATCHING = {"max_batch_size": 16, "max_batch_time_ms": 2.0}


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
