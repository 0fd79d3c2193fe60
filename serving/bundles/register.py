"""Registering a bundle: check it whole, then store its files and its registry row, or nothing.

The bundle is unpacked (an archive) into a scratch folder inside the model store, validated
there, copied to ``<models>/bundles/<name>/<version>`` under a temporary name and moved into
place in one rename; the registry row is written last, and the files are removed again when
that write fails. A (name, version) already registered is refused: a registered version never
changes under a running experiment — a changed bundle is a new version.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from core.errors import Conflict
from serving.bundles.archive import Limits, bundle_root, check_folder, is_archive, unpack
from serving.bundles.manifest import Manifest, ManifestError
from serving.bundles.validate import validate_bundle
from serving.registry import CandidateInfo, Registry


def bundle_dir(models_dir: Path, name: str, version: str) -> Path:
    return Path(models_dir) / "bundles" / name / version


def register_bundle(registry: Registry, models_dir: Path, source: Path,
                    limits: Limits | None = None) -> CandidateInfo:
    """Validate the bundle at `source` (folder or .tar.gz) and register it as a new version."""
    limits = limits or Limits()
    source = Path(source)
    if not source.exists():
        raise ManifestError(f"{source} does not exist: give a bundle folder or a .tar.gz of one")
    if not (source.is_dir() or is_archive(source)):
        raise ManifestError(f"{source.name} is neither a folder nor a .tar.gz archive")
    models_dir = Path(models_dir)
    (models_dir / "bundles").mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".incoming-", dir=models_dir / "bundles"))
    try:
        if source.is_dir():
            check_folder(source, limits)
            root = bundle_root(source)
        else:
            root = unpack(source, scratch / "unpacked", limits)
            check_folder(root, limits)
        manifest, _ = validate_bundle(root)
        if registry.exists(manifest.name, manifest.version):
            raise Conflict(f"candidate {manifest.name!r} version {manifest.version!r} is already "
                           "registered; give the changed bundle a new version")
        dest = _install(root, scratch, bundle_dir(models_dir, manifest.name, manifest.version))
        try:
            return _register_row(registry, manifest, dest)
        except BaseException:
            shutil.rmtree(dest, ignore_errors=True)
            raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _install(root: Path, scratch: Path, dest: Path) -> Path:
    staged = scratch / "staged"
    # Links were checked to stay inside; copying their targets leaves a bundle with no links.
    shutil.copytree(root, staged, symlinks=False)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():  # left by a registration whose row was never written
        shutil.rmtree(dest)
    os.replace(staged, dest)
    return dest


def _register_row(registry: Registry, manifest: Manifest, dest: Path) -> CandidateInfo:
    return registry.register(manifest.name, manifest.version, description=manifest.description,
                             pipeline=manifest.describe(), backend=manifest.backend,
                             artifacts=str(dest), requirements=manifest.requirements)


def retire_candidate(registry: Registry, name: str,
                     version: str | None = None) -> list[CandidateInfo]:
    """Retire a version (or every active version) of a candidate; its files and rows stay, so
    experiments that ran it can still be reported."""
    return registry.retire(name, version)
