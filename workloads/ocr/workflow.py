"""What `abvoc train` and `abvoc offline-test` do, as plain functions tests call directly."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from core.errors import AbvocError, NotFound
from core.settings import Settings
from core.store import Database
from serving.registry import Registry
from workloads.ocr.bundle import register_trained
from workloads.ocr.candidates import CANDIDATES, DEFAULT_TRAIN, train_candidate
from workloads.ocr.dataset import OFFLINE_MIX, Mix
from workloads.ocr.offline import DEFAULT_TEST_SIZE, offline_test

Say = Callable[[str], None]


def candidate_dir(models_dir: Path, name: str) -> Path:
    return Path(models_dir) / name


def train_and_register(settings: Settings, names: Sequence[str], n_train: int = DEFAULT_TRAIN,
                       epochs: int | None = None, seed: int = 0,
                       progress: Say | None = None) -> list[dict[str, Any]]:
    """Train each named candidate into the model store and register it."""
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown or not names:
        raise AbvocError(f"unknown candidate(s) {unknown}; known: {', '.join(CANDIDATES)}")
    registry = Registry(Database(settings.database_url))
    out = []
    for name in names:
        summary = train_candidate(name, settings.models_dir, n_train, epochs, seed, progress)
        info = register_trained(registry, settings.models_dir, Path(summary["artifacts"]))
        out.append({**summary, "version": info.version, "artifacts": info.artifacts})
    return out


def offline_test_and_store(settings: Settings, name: str, n: int = DEFAULT_TEST_SIZE,
                           seed: int = 0, mix: Mix = OFFLINE_MIX,
                           progress: Say | None = None) -> dict[str, Any]:
    """Evaluate a registered candidate's artifacts and store the results with it."""
    registry = Registry(Database(settings.database_url))
    info = registry.get(name)
    folder = Path(info.artifacts) if info.artifacts else candidate_dir(settings.models_dir, name)
    if not (folder / "candidate.json").exists():
        raise NotFound(f"no trained artifacts for {name!r} in {folder}: run `abvoc train {name}`")
    results = offline_test(folder, n=n, seed=seed, mix=mix, progress=progress)
    registry.set_offline_results(info.name, info.version, results)
    return results


def format_table(results: dict[str, Any]) -> str:
    """The offline results as a plain-text table, overall then one row per slice."""
    cols = [("exact_match", "exact", "{:.3f}"), ("token_edit_distance", "TED", "{:.3f}"),
            ("detection_recall", "det.rec", "{:.3f}"), ("symbol_accuracy", "sym.acc", "{:.3f}"),
            ("relation_accuracy", "rel.acc", "{:.3f}"), ("latency_p50_ms", "p50 ms", "{:.1f}"),
            ("latency_p99_ms", "p99 ms", "{:.1f}"), ("throughput_ips", "img/s", "{:.0f}")]
    head = f"{'slice':<24}{'n':>5}" + "".join(f"{label:>9}" for _, label, _ in cols)
    lines = [head]
    rows = [("overall", results["overall"]), *results.get("slices", {}).items()]
    for label, row in rows:
        cells = "".join(
            f"{(fmt.format(row[k]) if row.get(k) is not None else '-'):>9}" for k, _, fmt in cols
        )
        lines.append(f"{label:<24}{row['n']:>5}{cells}")
    model = results.get("model")
    if model:
        lines.append(f"model size {model['size_mb']} MB, {model['parameters']} parameters")
    return "\n".join(lines)
