"""Checking a bundle before it is registered: the manifest parses, every stage's file is there
and loads, the declared input signature is what the first stage takes, and a stage's declared
answer is one of its outputs where the artifact names them.

The signature check compares names, V2 datatypes and shapes where the artifact says them: a
declared size must equal a fixed one, and a declared -1 (any size) must meet a dimension the
artifact leaves open — otherwise requests the manifest promises to accept would fail inside.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from core.output_types import RIGHT
from core.text import quoted_names
from serving.bundles.manifest import Manifest, ManifestError, Stage, load_manifest
from serving.bundles.output_check import check_answer_readable
from serving.bundles.stages import InputInfo, LoadedStage, load_stage, torch_device


def validate_bundle(folder: Path, timeout_s: float | None = None,
                    ) -> tuple[Manifest, list[LoadedStage]]:
    """The manifest and its loaded stages, or a ManifestError naming the field or file.

    With `timeout_s` the loading runs on a thread of its own and a load that has not ended by
    then is refused: Python cannot stop the thread (it ends when the team's code does), but
    the caller, and the registration's request thread with it, is free."""
    if timeout_s is None:
        return _validate(folder)
    result: dict[str, Any] = {}

    def load() -> None:
        try:
            result["loaded"] = _validate(folder)
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
            result["error"] = exc

    loader = threading.Thread(target=load, name=f"load-bundle-{folder.name}", daemon=True)
    loader.start()
    loader.join(timeout_s)
    if loader.is_alive():
        raise ManifestError(f"loading the bundle took longer than {timeout_s:g} s (a stage's "
                            "module import or an artifact's load did not finish); make loading "
                            "quick: do slow work once, when the stage is first called")
    if "error" in result:
        raise result["error"]
    return result["loaded"]


def _validate(folder: Path) -> tuple[Manifest, list[LoadedStage]]:
    manifest = load_manifest(folder)
    if manifest.backend == "torch":
        torch_device(manifest.device)  # a GPU asked for where there is none: refused here
    stages = [load_stage(stage, folder, manifest.batching.workers, manifest.device)
              for stage in manifest.stages]
    if stages:
        check_signature(manifest, stages[0])
    for i in range(1, len(stages)):
        _check_chain(i, manifest.stages[i - 1], stages[i - 1], stages[i])
    if stages:
        check_answer_readable(manifest, stages[-1])
    for i, (spec, loaded) in enumerate(zip(manifest.stages, stages, strict=True)):
        if spec.name == RIGHT:
            raise ManifestError(f"stages[{i}].name {RIGHT!r} is reserved: stage attribution "
                                "counts right answers under it; name the stage otherwise")
        if spec.answer is not None and loaded.outputs is not None \
                and spec.answer not in loaded.outputs:
            raise ManifestError(f"stages[{i}].answer {spec.answer!r} is not an output of stage "
                                f"{spec.name!r}; it gives {quoted_names(loaded.outputs)}")
    return manifest, stages


def _check_chain(i: int, before_spec: Stage, before: LoadedStage, stage: LoadedStage) -> None:
    """Refuse stage `i` when it takes a tensor the stage before it does not give, where both
    artifacts name theirs (a Python stage's are known only when it runs): otherwise every
    request would fail inside, as the candidate's error, after registration said yes."""
    gives = before.outputs if before.outputs is not None else before_spec.outputs
    if gives is None or stage.inputs is None:
        return
    missing = [t.name for t in stage.inputs if t.name not in gives]
    if missing:
        raise ManifestError(f"stages[{i}] {stage.name!r} takes {quoted_names(missing)}, which "
                            f"stage {before.name!r} before it does not give (it gives "
                            f"{quoted_names(gives)}); "
                            "each stage is given only the outputs of the one before it: rename "
                            "them, or map them in a Python stage between the two")


def check_signature(manifest: Manifest, first: LoadedStage) -> None:
    """Refuse a manifest whose inputs are not what the first stage takes."""
    if first.inputs is None:
        return  # a Python stage takes whatever it is given
    match_signature(manifest, first.inputs, f"first stage {first.name!r}")


def match_signature(manifest: Manifest, taken: tuple[InputInfo, ...], taker: str) -> None:
    """Refuse a manifest whose inputs are not the ones `taker` (a stage, a remote model)
    takes: the same names, datatypes and shapes where it says them."""
    declared = {t.name: t for t in manifest.inputs}
    by_name = {i.name: i for i in taken}
    if set(declared) != set(by_name):
        raise ManifestError(f"inputs {quoted_names(sorted(declared))} do not match the inputs "
                            f"of the {taker}: {quoted_names(sorted(by_name))}")
    for name, spec in declared.items():
        _check_one(taker, name, spec.datatype, spec.shape, by_name[name])


def _check_one(taker: str, name: str, datatype: str, shape: tuple[int, ...],
               info: InputInfo) -> None:
    where = f"input {name!r}"
    if info.datatype is not None and info.datatype != datatype:
        raise ManifestError(f"{where} is declared {datatype} but the {taker} takes "
                            f"{info.datatype}")
    if info.shape is None:
        return
    if len(info.shape) != len(shape):
        raise ManifestError(f"{where} is declared with shape {list(shape)} but the {taker} "
                            f"takes {len(info.shape)} dimensions {_show(info.shape)}")
    for axis, (want, has) in enumerate(zip(shape, info.shape, strict=True)):
        if has is not None and want != has:
            raise ManifestError(f"{where} dimension {axis} is declared "
                                f"{'-1 (any size)' if want == -1 else want} but the {taker} "
                                f"fixes it at {has} (shape {_show(info.shape)})")


def _show(shape: tuple[int | None, ...]) -> str:
    return "[" + ", ".join("-1" if d is None else str(d) for d in shape) + "]"
