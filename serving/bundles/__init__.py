"""Candidate bundles: a team's own model as files plus a `candidate.toml` manifest.

    info = register_bundle(registry, settings.models_dir, Path("examples/bundles/iris-onnx"))
    with BundleRunner.open(Path(info.artifacts)) as runner:
        outputs = runner.predict({"features": batch})

`manifest` parses and checks the manifest, `archive` unpacks a .tar.gz safely, `stages` loads
each stage, `validate` checks the files and the signature, `runner` runs the stages and
`register` stores a checked bundle and its registry row (or nothing); `offline` runs a team's
dataset through it (`json_input` reads the team's JSON files, `text` says which names and notes
can be stored).
"""

from serving.bundles.archive import Limits
from serving.bundles.manifest import MANIFEST_NAME, Manifest, ManifestError, load_manifest
from serving.bundles.register import (
    bundle_dir,
    register_bundle,
    retire_candidate,
    still_served,
)
from serving.bundles.runner import BundleRunner
from serving.bundles.validate import validate_bundle

__all__ = [
    "MANIFEST_NAME",
    "BundleRunner",
    "Limits",
    "Manifest",
    "ManifestError",
    "bundle_dir",
    "load_manifest",
    "register_bundle",
    "retire_candidate",
    "still_served",
    "validate_bundle",
]
