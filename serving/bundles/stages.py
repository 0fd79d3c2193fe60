"""Loading one bundle stage into something that maps named numpy arrays to named numpy arrays.

Every stage takes the previous stage's outputs (the request's inputs for the first) as a dict of
name -> array and returns such a dict: ONNX stages take the inputs their graph names, TorchScript
stages the arguments of `forward` by name, Python stages the whole dict. A stage that cannot be
loaded raises a ManifestError naming the stage and its file, so registration refuses it.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from core.text import quoted_names
from serving.bundles.manifest import ManifestError, Stage
from serving.bundles.tensors import TensorError
from serving.bundles.text_tensors import as_text

Tensors = dict[str, np.ndarray]
StageFn = Callable[[Tensors], Tensors]


class StageExited(RuntimeError):
    """A Python stage raised SystemExit or KeyboardInterrupt: a failure of that request, like
    any other exception, never the end of the thread that ran it."""

# ONNX Runtime's type strings and their Open Inference Protocol V2 datatypes.
ORT_TO_V2 = {
    "tensor(bool)": "BOOL", "tensor(uint8)": "UINT8", "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32", "tensor(uint64)": "UINT64", "tensor(int8)": "INT8",
    "tensor(int16)": "INT16", "tensor(int32)": "INT32", "tensor(int64)": "INT64",
    "tensor(float16)": "FP16", "tensor(float)": "FP32", "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}


@dataclass(frozen=True)
class InputInfo:
    """What a loaded stage says it takes: a name, and where known a V2 datatype and a shape
    (None for a dimension the artifact leaves open)."""

    name: str
    datatype: str | None = None
    shape: tuple[int | None, ...] | None = None


def fixed_dims(shape: Any) -> tuple[int | None, ...]:
    """A shape as an artifact or a server states it, each dimension it leaves open (a name,
    -1, 0, None) as None."""
    return tuple(d if isinstance(d, int) and d > 0 else None for d in shape)


@dataclass
class LoadedStage:
    name: str
    run: StageFn
    inputs: tuple[InputInfo, ...] | None  # None: takes whatever it is given (Python stages)
    pipeline: Any = None  # a "pipeline" stage's image pipeline (serving.pipelines)
    outputs: tuple[str, ...] | None = None  # where the artifact names them (ONNX, engines)
    gives: tuple[InputInfo, ...] | None = None  # its outputs' datatypes and shapes (ONNX)


def load_stage(stage: Stage, folder: Path, side_by_side: int = 1,
               device: str = "auto") -> LoadedStage:
    """The stage ready to run; a ManifestError naming the stage and file when it will not load.
    `side_by_side`: how many threads will call it at once (the batching's workers); `device`:
    the manifest's, where a TorchScript stage runs."""
    if stage.kind == "python":
        return _python(stage, folder)
    if stage.kind == "pipeline":
        return _pipeline(stage, folder)
    path = folder / (stage.path or "")
    if not path.is_file():
        raise ManifestError(f"stage {stage.name!r}: file {stage.path!r} is missing from the "
                            "bundle")
    if stage.kind == "onnx":
        return _onnx(stage, path, side_by_side)
    if stage.kind == "torchscript":
        return _torchscript(stage, path, torch_device(device))
    from serving.bundles.engine_stage import load_engine_stage

    return load_engine_stage(stage, path)


def _onnx(stage: Stage, path: Path, side_by_side: int) -> LoadedStage:
    import onnxruntime as ort

    from serving.backends.ort_options import cpu_session_options, threads_sharing

    options = cpu_session_options(threads_sharing(side_by_side))
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
        # onnxruntime names the file by its full path: the server's scratch folder, not the
        # bundle's file the message names already.
        said = _first_line(exc).replace(str(path), stage.path)
        raise ManifestError(f"stage {stage.name!r}: {stage.path!r} does not load as ONNX: "
                            f"{said}") from exc
    inputs = tuple(InputInfo(i.name, ORT_TO_V2.get(i.type, i.type), fixed_dims(i.shape))
                   for i in session.get_inputs())
    names = [i.name for i in inputs]
    texts = [i.name for i in inputs if i.datatype == "BYTES"]
    outputs = [o.name for o in session.get_outputs()]
    gives = tuple(InputInfo(o.name, ORT_TO_V2.get(o.type, o.type), fixed_dims(o.shape))
                  for o in session.get_outputs())

    def run(tensors: Tensors) -> Tensors:
        feed = {n: tensors[n] for n in needed(stage, names, tensors)}
        for n in texts:
            feed[n] = _ort_text(stage, n, feed[n])
        return dict(zip(outputs, session.run(outputs, feed), strict=True))

    return LoadedStage(stage.name, run, inputs, outputs=tuple(outputs), gives=gives)


class StageGaveNoText(RuntimeError):
    """An ONNX stage's string input holds bytes that are not UTF-8 though the request's were
    checked (BundleRunner.check_inputs): the stage before it gave them, the bundle's defect."""


def _ort_text(stage: Stage, name: str, array: np.ndarray) -> np.ndarray:
    """A tensor(string) input as str objects (onnxruntime would write bytes as "b'...'")."""
    try:
        return as_text(array, f"stage {stage.name!r}: input {name!r}")
    except TensorError as exc:
        raise StageGaveNoText(f"{exc.message}: the stage before it gave bytes, and this ONNX "
                              "stage takes text (tensor(string))") from None


def torch_device(device: str) -> Any:
    """The torch device a manifest's `device` names ("auto": a GPU where torch sees one); a
    ManifestError, so registration refuses it, when it names a GPU this host does not have."""
    from serving.backends import BackendSettings, BackendUnavailable

    try:
        return BackendSettings(device=device).torch_device()
    except BackendUnavailable as exc:
        raise ManifestError(f"{exc.message}; register the bundle on a host with one, or set "
                            "device = \"auto\" (the GPU where there is one)") from None


def _torchscript(stage: Stage, path: Path, device: Any) -> LoadedStage:
    import torch

    from serving.backends import BackendError

    try:
        with warnings.catch_warnings():
            # torch marks TorchScript deprecated (a FutureWarning in 2.15, a DeprecationWarning
            # in 2.11); it is still what many teams ship.
            warnings.filterwarnings("ignore", message="`torch.jit.load` is deprecated")
            module = torch.jit.load(str(path), map_location=device).eval()
        arguments = module.forward.schema.arguments[1:]  # the first is `self`
    except Exception as exc:  # torch raises RuntimeError or ValueError for a bad file
        raise ManifestError(f"stage {stage.name!r}: {stage.path!r} does not load as "
                            f"TorchScript: {_first_line(exc)}") from exc
    names = [a.name for a in arguments]

    def run(tensors: Tensors) -> Tensors:
        args = [torch.from_numpy(np.ascontiguousarray(tensors[n])).to(device)
                for n in needed(stage, names, tensors)]
        with torch.inference_mode():
            out = module(*args)
        if stage.outputs:
            results = out if isinstance(out, tuple | list) else (out,)
            if len(results) != len(stage.outputs):
                raise BackendError(f"stage {stage.name!r} returned {len(results)} results; its "
                                   f"manifest names {len(stage.outputs)}: "
                                   f"{quoted_names(stage.outputs)}")
            return {n: _array(r) for n, r in zip(stage.outputs, results, strict=True)}
        return _as_tensors(stage, out)

    return LoadedStage(stage.name, run, tuple(InputInfo(n) for n in names))


def _python(stage: Stage, folder: Path) -> LoadedStage:
    module_name, _, func_name = (stage.callable or "").partition(":")
    module = _import_from(folder, module_name, stage)
    fn = getattr(module, func_name, None)
    if not callable(fn):
        raise ManifestError(f"stage {stage.name!r}: {module_name!r} has no function "
                            f"{func_name!r}")

    def run(tensors: Tensors) -> Tensors:
        try:
            return _as_tensors(stage, fn(dict(tensors)))
        except Exception:
            raise
        except BaseException as exc:  # sys.exit() in the team's code must not end a thread
            raise StageExited(f"stage {stage.name!r} raised {type(exc).__name__} "
                              f"({_first_line(exc)})") from None

    return LoadedStage(stage.name, run, None)


def _pipeline(stage: Stage, folder: Path) -> LoadedStage:
    """Build the image pipeline with the bundle's factory; serving.pipelines serves it."""
    from serving.pipelines import REQUIRED

    module_name, _, func_name = (stage.callable or "").partition(":")
    factory = getattr(_import_from(folder, module_name, stage), func_name, None)
    if not callable(factory):
        raise ManifestError(f"stage {stage.name!r}: {module_name!r} has no function "
                            f"{func_name!r}")
    try:
        pipeline = factory(folder)
    except BaseException as exc:  # the team's factory may raise anything, sys.exit() too
        raise ManifestError(f"stage {stage.name!r}: {stage.callable}(folder) failed: "
                            f"{type(exc).__name__}: {_first_line(exc)}") from exc
    missing = [m for m in REQUIRED if not callable(getattr(pipeline, m, None))]
    if missing:
        raise ManifestError(f"stage {stage.name!r}: {stage.callable} returned a "
                            f"{type(pipeline).__name__} without {missing}")

    def run(tensors: Tensors) -> Tensors:
        from serving.backends import BadBatch

        raise BadBatch(f"stage {stage.name!r} is an image pipeline: send images to "
                       "POST /v1/predict")

    return LoadedStage(stage.name, run, None, pipeline)


class _SourceOnly(importlib.machinery.SourceFileLoader):
    """Runs a bundle's module from its source alone, reading and writing no bytecode cache in
    the bundle's folder: that folder is the team's own (registered from where it lies) or the
    registry's copy, a `.pyc` planted beside the source would run in its place, and racing
    registrations of one folder copied the cache file that another's import was writing."""

    def get_code(self, fullname: str) -> Any:
        path = self.get_filename(fullname)
        return compile(self.get_data(path), path, "exec", dont_inherit=True)


def _import_from(folder: Path, module_name: str, stage: Stage) -> ModuleType:
    """Import `module_name` from the bundle's own files under a private name, so two bundles
    (or two versions of one) with a `post.py` each never see each other's."""
    rel = Path(*module_name.split("."))
    path = next((p for p in (folder / f"{rel}.py", folder / rel / "__init__.py") if p.is_file()),
                None)
    if path is None:
        raise ManifestError(f"stage {stage.name!r}: module {module_name!r} is missing from the "
                            f"bundle (expected {rel}.py)")
    tag = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    private = f"_abvoc_bundle_{tag}_{module_name.replace('.', '_')}"
    spec = importlib.util.spec_from_file_location(private, path,
                                                  loader=_SourceOnly(private, str(path)))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:  # the team's code may raise anything, sys.exit() too
        raise ManifestError(f"stage {stage.name!r}: importing {rel}.py failed: "
                            f"{type(exc).__name__}: {_first_line(exc)}") from exc
    sys.modules.pop(private, None)
    return module


class StagesDoNotChain(RuntimeError):
    """A stage needs a tensor the stages before it did not give: the bundle's defect (the
    request matched the manifest, which the first stage's signature matches), so the
    candidate's failure, recorded and counted, never the caller's 400."""


def needed(stage: Stage, names: list[str], tensors: Tensors) -> list[str]:
    """`names` when every one is among the tensors; else StagesDoNotChain naming those
    missing."""
    missing = [n for n in names if n not in tensors]
    if missing:
        raise StagesDoNotChain(f"stage {stage.name!r} needs input(s) {quoted_names(missing)}, "
                               "which the stages before it did not give (it was given "
                               f"{quoted_names(sorted(tensors))}): the bundle's stages do not "
                               "chain")
    return names


def _as_tensors(stage: Stage, out: Any) -> Tensors:
    """A stage's result as named arrays: a dict as is, a tuple numbered, else one "output"."""
    if isinstance(out, dict):
        return {str(k): _array(v) for k, v in out.items()}
    if isinstance(out, tuple):
        return {f"output_{i}": _array(v) for i, v in enumerate(out)}
    return {"output": _array(out)}


def _array(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
