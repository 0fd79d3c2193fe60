"""What `abvoc train` and `abvoc offline-test` do, as plain functions tests call directly."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from core.errors import AbvocError, NotFound, refuse_unknown
from core.folders import check_writable
from core.settings import Settings
from core.store import Database
from core.text import quoted_names
from serving.bundles.manifest import MANIFEST_NAME
from serving.registry import Registry
from workloads.ocr.bundle import register_trained, registered
from workloads.ocr.candidates import CANDIDATES, DEFAULT_TRAIN, train_candidate
from workloads.ocr.dataset import OFFLINE_MIX, Mix
from workloads.ocr.mobile import MOBILE, quantize_candidate
from workloads.ocr.offline import DEFAULT_TEST_SIZE, offline_test
from workloads.ocr.onegraph import ONEGRAPH, make_candidate

Say = Callable[[str], None]


def candidate_dir(models_dir: Path, name: str) -> Path:
    return Path(models_dir) / name


def train_and_register(settings: Settings, names: Sequence[str], n_train: int = DEFAULT_TRAIN,
                       epochs: int | None = None, seed: int = 0,
                       progress: Say | None = None) -> list[dict[str, Any]]:
    """Train each named candidate into the model store and register it. A mobile candidate
    is its float base quantized, a one-graph candidate its float base exported as one ONNX
    graph: the base trained in the store is used, trained first (with these settings) when the
    store has none."""
    known = [*CANDIDATES, *MOBILE, *ONEGRAPH]
    if not names:
        raise AbvocError(f"name a candidate to train; known: {quoted_names(known)}")
    refuse_unknown(names, known, noun="candidate(s)", known="known:")
    check_writable(Path(settings.models_dir))  # now, not after the training it would keep
    out = []
    with Database(settings.database_url) as db:  # closed however training ends
        registry = Registry(db)
        for name in names:
            if name in MOBILE or name in ONEGRAPH:
                out.append(_derive_and_register(registry, settings, name, n_train, epochs,
                                                seed, progress))
                continue
            summary = train_candidate(name, settings.models_dir, n_train, epochs, seed,
                                      progress)
            info, status = registered(registry, settings.models_dir,
                                      Path(summary["artifacts"]))
            out.append({**summary, "version": info.version, "artifacts": info.artifacts,
                        "registration": status})
    return out


def _derive_and_register(registry: Registry, settings: Settings, name: str, n_train: int,
                         epochs: int | None, seed: int,
                         progress: Say | None) -> dict[str, Any]:
    say = progress or (lambda _msg: None)
    base = (MOBILE.get(name) or ONEGRAPH[name])["base"]
    base_dir = candidate_dir(settings.models_dir, base)
    if not (base_dir / "candidate.json").exists():
        say(f"[{name}] no trained {base} in {settings.models_dir}: training it first")
        summary = train_candidate(base, settings.models_dir, n_train, epochs, seed, progress)
        register_trained(registry, settings.models_dir, Path(summary["artifacts"]))
    if name in ONEGRAPH:
        say(f"[{name}] exporting {base_dir} as one ONNX graph (ONNX Runtime, abvoc op library)")
        made = make_candidate(name, base_dir, settings.models_dir)
        info, status = registered(registry, settings.models_dir, Path(made["artifacts"]))
        return {**made, "version": info.version, "artifacts": info.artifacts,
                "registration": status}
    say(f"[{name}] quantizing {base_dir} to int8 (calibration: its training split)")
    made = quantize_candidate(name, base_dir, settings.models_dir)
    info, status = registered(registry, settings.models_dir, Path(made["artifacts"]))
    say(f"[{name}] {made['float_size_mb']} MB float -> {made['size_mb']} MB int8")
    return {**made, "version": info.version, "artifacts": info.artifacts, "registration": status}


def offline_test_and_store(settings: Settings, name: str, n: int = DEFAULT_TEST_SIZE,
                           seed: int = 0, mix: Mix = OFFLINE_MIX,
                           progress: Say | None = None) -> dict[str, Any]:
    """Evaluate a registered candidate's artifacts and store the results with it."""
    with Database(settings.database_url) as db:
        info = Registry(db).get(name)
    folder = Path(info.artifacts) if info.artifacts else candidate_dir(settings.models_dir, name)
    if not (folder / "candidate.json").exists():
        from workloads.ocr.pages.bundle import EXTRACTORS

        if name in EXTRACTORS:
            raise AbvocError(f"{name!r} cuts pages into formulas: test it on generated pages "
                             f"with `abvoc pages offline-test {name}`")
        if (folder / MANIFEST_NAME).exists():
            raise AbvocError(f"{name!r} is a bundle candidate: test it on its own labeled set "
                             f"with `abvoc offline-test {name} --dataset FILE` (a JSONL "
                             "manifest, one {inputs, label, slice} a line)")
        raise NotFound(f"no trained artifacts for {name!r} in {folder}: run `abvoc train {name}`")
    results = {**offline_test(folder, n=n, seed=seed, mix=mix, progress=progress),
               "version": info.version}  # the version tested, for its requirements' checks
    with Database(settings.database_url) as db:  # not held open through the test's minutes
        Registry(db).set_offline_results(info.name, info.version, results)
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
