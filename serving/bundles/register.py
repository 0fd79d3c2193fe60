"""Registering a bundle: check it whole, then store its files and its registry row, or nothing.

The bundle is unpacked (an archive) into a scratch folder inside the model store, validated
there (a [remote] candidate's server asked whether it serves the model: remote_check), copied
to ``<models>/bundles/<name>/<version>/<token>`` under a temporary name and moved
into place in one rename; the registry row is written last, and the files are removed again when
that write fails. A (name, version) already registered is refused: a registered version never
changes under a running experiment — a changed bundle is a new version.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError

from core.errors import Conflict
from core.folders import scratch_folder
from serving.bundles.archive import Limits, bundle_root, check_folder, is_archive, unpack
from serving.bundles.manifest import Manifest, ManifestError
from serving.bundles.remote_check import check_served
from serving.bundles.validate import validate_bundle
from serving.experiments import Experiments
from serving.registry import CandidateInfo, Registry


def bundle_dir(models_dir: Path, name: str, version: str) -> Path:
    """Where registrations of this (name, version) put their files, one sub-folder each."""
    return Path(models_dir) / "bundles" / name / version


def register_bundle(registry: Registry, models_dir: Path, source: Path,
                    limits: Limits | None = None, *, check_remote: bool = True
                    ) -> CandidateInfo:
    """Validate the bundle at `source` (folder or .tar.gz) and register it as a new version;
    a [remote] candidate's server is asked whether it serves the model, unless
    `check_remote` is off (remote_check)."""
    limits = limits or Limits()
    source = Path(source)
    if not source.exists():
        raise ManifestError(f"{source} does not exist: give a bundle folder or a .tar.gz of one")
    if not (source.is_dir() or is_archive(source)):
        raise ManifestError(f"{source.name} is neither a folder nor a .tar.gz archive")
    models_dir = Path(models_dir)
    scratch = scratch_folder(models_dir / "bundles", ".incoming-")
    try:
        if source.is_dir():
            check_folder(source, limits)
            root = bundle_root(source)
        else:
            root = unpack(source, scratch / "unpacked", limits)
            check_folder(root, limits)
        manifest, _ = validate_bundle(root, limits.load_seconds)
        if registry.exists(manifest.name, manifest.version):
            raise _conflict(manifest, registry)
        if check_remote:
            check_served(manifest)
        # A folder of its own per registration: a racing registration of the same version
        # can never overwrite the files of the one whose row wins.
        dest = bundle_dir(models_dir, manifest.name, manifest.version) / uuid.uuid4().hex[:12]
        _install(root, scratch, dest)
        try:
            return _register_row(registry, manifest, dest)
        except IntegrityError as exc:  # the racing registration committed its row first
            shutil.rmtree(dest, ignore_errors=True)
            raise _conflict(manifest) from exc
        except BaseException:
            shutil.rmtree(dest, ignore_errors=True)
            raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _install(root: Path, scratch: Path, dest: Path) -> None:
    staged = scratch / "staged"
    # Links were checked to stay inside; copying their targets leaves a bundle with no links.
    # Bytecode caches stay behind: a bundle's modules run from their source (stages.py).
    shutil.copytree(root, staged, symlinks=False, ignore=shutil.ignore_patterns("__pycache__"))
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged, dest)


def _register_row(registry: Registry, manifest: Manifest, dest: Path) -> CandidateInfo:
    return registry.register(manifest.name, manifest.version, description=manifest.description,
                             pipeline=manifest.describe(), backend=manifest.backend,
                             artifacts=str(dest), requirements=manifest.requirements,
                             create_only=True)


def _conflict(manifest: Manifest, registry: Registry | None = None) -> Conflict:
    """A version is registered once, retired or not (its rows stay for the experiments that
    ran it), so a retired one says so: 'already registered' alone read as a lie beside a
    list that no longer shows it."""
    retired = ""
    if registry is not None:
        held = registry.get(manifest.name, manifest.version)
        retired = " (and retired)" if held.retired else ""
    return Conflict(f"candidate {manifest.name!r} version {manifest.version!r} is already "
                    f"registered{retired}; give the changed bundle a new version")


def retire_candidate(registry: Registry, name: str,
                     version: str | None = None) -> list[CandidateInfo]:
    """Retire a version (or every active version) of a candidate; its files and rows stay, so
    experiments that ran it can still be reported."""
    return registry.retire(name, version)


def still_served(registry: Registry, retired: list[CandidateInfo]) -> list[dict[str, Any]]:
    """Where the versions just retired are still served: retiring takes a version out of new
    experiments only, and one an experiment runs now serves on until that experiment stops."""
    experiments = Experiments(registry.db)
    return [{"candidate": c.name, "version": c.version, **use}
            for c in retired for use in experiments.serving(c.name, c.version)]
