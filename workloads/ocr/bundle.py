"""A trained OCR candidate as an ordinary bundle, registered through the path any team uses.

The trained folder (networks, `candidate.json`) gets a `candidate.toml` and a one-line entry
module: the manifest's only stage is a "pipeline" whose factory, `workloads.ocr.served`'s
`open_pipeline`, loads the networks from the folder. The version is the spec's version plus a
digest of the trained files, so training again with other data is a new candidate version and
registering the same files twice finds the version already there.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import tomli_w

from serving.bundles import MANIFEST_NAME, load_manifest, register_bundle
from serving.registry import CandidateInfo, Registry

ENTRY_MODULE = "ocr_entry"
_ENTRY_SOURCE = ('"""The OCR bundle\'s pipeline factory: the reference workload\'s loader."""\n\n'
                 "from workloads.ocr.served import open_pipeline\n\n"
                 '__all__ = ["open_pipeline"]\n')
_TRAINED_FILES = ("recognizer.pt", "aligner.pt")
BATCHING = {"max_batch_size": 16, "max_batch_time_ms": 2.0}


def trained_files(spec: dict[str, Any]) -> tuple[str, ...]:
    """The files that make the candidate: its spec and its networks (torch weights, or the
    ONNX files a quantized candidate ships)."""
    networks = tuple(spec["onnx"].values()) if spec.get("onnx") else _TRAINED_FILES
    return ("candidate.json", *networks)


def bundle_version(folder: Path, spec_version: str, spec: dict[str, Any] | None = None) -> str:
    digest = hashlib.sha256()
    for name in trained_files(spec or {}):
        digest.update((Path(folder) / name).read_bytes())
    return f"{spec_version}+{digest.hexdigest()[:10]}"


def write_bundle(folder: Path, spec: dict[str, Any], backend: str = "torch") -> str:
    """Make the trained folder a bundle (manifest and entry module); returns its version."""
    folder = Path(folder)
    version = bundle_version(folder, str(spec["version"]), spec)
    manifest = {
        "name": spec["name"],
        "version": version,
        "description": spec["description"],
        "backend": backend,
        "inputs": [{"name": "image", "datatype": "UINT8", "shape": [-1, -1]}],
        "output": {"type": "latex"},
        "stages": [{"name": "ocr", "kind": "pipeline",
                    "callable": f"{ENTRY_MODULE}:open_pipeline"}],
        "batching": BATCHING,
        "requirements": spec["requirements"],
    }
    (folder / f"{ENTRY_MODULE}.py").write_text(_ENTRY_SOURCE)
    (folder / MANIFEST_NAME).write_text(tomli_w.dumps(manifest))
    return version


def register_trained(registry: Registry, models_dir: Path, folder: Path) -> CandidateInfo:
    """Register a trained candidate's bundle; the version already registered when it is."""
    return registered(registry, models_dir, folder)[0]


def registered(registry: Registry, models_dir: Path, folder: Path) -> tuple[CandidateInfo, str]:
    """Register a trained candidate's bundle, and say what happened, so a command never claims
    a fresh registration it did not make: "registered", "already registered" (the same trained
    files, kept), or "retired" (registered before and retired, which it stays)."""
    manifest = load_manifest(Path(folder))
    if registry.exists(manifest.name, manifest.version):
        info = registry.get(manifest.name, manifest.version)
        return info, "retired" if info.retired else "already registered"
    return register_bundle(registry, models_dir, Path(folder)), "registered"


def registration_note(name: str, version: str, status: str) -> str:
    """What a person should know about a registration that was not a new one ("" if it was)."""
    if status == "retired":
        return (f"{name} v{version} was already registered and is retired: it stays retired, "
                "so it is neither listed nor served; train with another --seed (or other "
                "--n-train / --epochs) to make a new version")
    if status == "already registered":
        return f"{name} v{version} was already registered (the same trained files): kept"
    return ""
