"""What `abvoc pages train`, `abvoc pages offline-test` and `abvoc dataset split-pages` do, as
plain functions the tests call directly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.errors import AbvocError
from core.settings import Settings
from core.store import Database
from serving.registry import CandidateInfo, Registry
from workloads.ocr.bundle import registered
from workloads.ocr.pages.bundle import DEFAULTS, EXTRACTORS, build_extractors
from workloads.ocr.pages.offline import DEFAULT_PAGES, offline_test_pages
from workloads.ocr.pages.split import Progress, SplitSummary, page_files, split_pages

Say = Callable[[str], None]


def train_and_register_extractors(settings: Settings, n_train: int = DEFAULTS["n_train"],
                                  n_validation: int = DEFAULTS["n_validation"],
                                  epochs: int = DEFAULTS["epochs"], seed: int = 0,
                                  progress: Say | None = None) -> list[dict[str, Any]]:
    """Build both extraction bundles in the model store and register them."""
    built = build_extractors(Path(settings.models_dir), n_train, n_validation, epochs,
                             seed=seed, progress=progress)
    out = []
    with Database(settings.database_url) as db:
        for item in built:
            info, status = registered(Registry(db), settings.models_dir, Path(item["artifacts"]))
            out.append({**item, "version": info.version, "artifacts": info.artifacts,
                        "registration": status})
    return out


def extractor(registry: Registry, name: str, version: str | None = None) -> CandidateInfo:
    """A registered extraction candidate; a clear error for any other candidate."""
    info = registry.get(name, version)
    if info.pipeline.get("output", {}).get("type") != "json" \
            or info.pipeline.get("takes") != "image":
        raise AbvocError(f"candidate {name!r} is not a page extraction candidate (an image "
                         f"pipeline answering json boxes); known ones: {sorted(EXTRACTORS)}")
    return info


def offline_test_pages_and_store(settings: Settings, name: str, n: int = DEFAULT_PAGES,
                                 seed: int = 0, ocr: str | None = None,
                                 backend: str | None = None,
                                 progress: Say | None = None) -> dict[str, Any]:
    """Test a registered extraction candidate on the generated offline-test pages (end to end
    through the OCR candidate `ocr` when named) and store the results with it."""
    with Database(settings.database_url) as db:
        info = extractor(Registry(db), name)
        ocr_info = Registry(db).get(ocr) if ocr is not None else None
    ocr_folder = Path(ocr_info.artifacts) if ocr_info is not None else None
    if ocr_folder is not None and not (ocr_folder / "candidate.json").is_file():
        raise AbvocError(f"candidate {ocr!r} is not a trained OCR candidate; train one with "
                         "`abvoc train ocr-small-mixed`")
    results = offline_test_pages(Path(info.artifacts), n, seed, ocr_folder, backend, progress)
    if ocr_info is not None:
        results["ocr"] = {"candidate": ocr_info.name, "version": ocr_info.version}
    results["candidate"] = {"name": info.name, "version": info.version}
    with Database(settings.database_url) as db:
        Registry(db).set_offline_results(info.name, info.version, results)
    return results


def split_pages_with(settings: Settings, folder: Path, out: Path, name: str,
                     version: str | None = None, min_score: float = 0.0,
                     progress: Progress | None = None) -> SplitSummary:
    """`split_pages` with a registered extraction candidate (latest active version default);
    the folder is checked for pages first, so a wrong folder is named before the store is."""
    page_files(Path(folder))
    with Database(settings.database_url) as db:
        info = extractor(Registry(db), name, version)
    return split_pages(folder, out, Path(info.artifacts), info.name, info.version, min_score,
                       progress)
