"""The bundle manifest, `candidate.toml`: what a team says about its candidate, parsed into frozen
dataclasses. Every refusal is a 400 that names the key to fix, so a typo never silently drops a
setting.

    name = "iris-onnx"
    version = "1"
    backend = "onnxruntime"          # torch | onnxruntime | tensorrt | remote
    device = "auto"                  # torch only: auto (a GPU where torch sees one), cpu, cuda:N
    [[inputs]]                       # the Open Inference Protocol V2 signature
    name = "features"; datatype = "FP32"; shape = [-1, 4]
    [output]
    type = "label"; classes = ["a", "b"]
    [[stages]]                       # in order; an artifact or a Python callable
    name = "classifier"; kind = "onnx"; path = "model.onnx"
    [[stages]]
    name = "to_label"; kind = "python"; callable = "post:to_label"
    # kind = "torchscript" stages may name their results: outputs = ["probabilities"]
    # any stage but the last may name the output that reads as its answer: answer = "scores"
    # kind = "pipeline": the only stage, `callable = "module:factory"`; factory(folder) returns an
    # image pipeline (serving.pipelines) whose networks run on the backend, served by /v1/predict
    [batching]
    max_batch_size = 16; max_batch_time_ms = 2
    timeout_ms = 30000               # a request's whole wait for the stages (default 30 s)
    [requirements]                   # the registry's requirement keys
    p99_ms = 10
    [remote]                         # instead of stages: an OIP V2 endpoint the team runs
    url = "http://10.0.0.5:8080"; model = "iris"; version = "1"; timeout_ms = 500; retries = 1
    binary_data = false              # true: binary tensors both ways (Triton, KServe; not MLServer)
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import AbvocError
from core.relabel import MAX_STAGE_NAME
from serving.bundles.manifest_fields import (
    ManifestError,
    dimensions,
    free_text,
    get_value,
    identifier,
    no_unknown,
    string,
    table,
    tables,
)
from serving.bundles.manifest_remote import RemoteSpec, remote_spec
from serving.bundles.tensors import MAX_VALUES
from serving.bundles.text import classes_problem
from serving.registry import BACKENDS, validate_requirements

MANIFEST_NAME = "candidate.toml"
DATATYPES = ("BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
             "FP16", "FP32", "FP64", "BYTES")
OUTPUT_TYPES = ("label", "text", "latex", "number", "json")
STAGE_KINDS = ("onnx", "torchscript", "tensorrt", "python", "pipeline")
CALLABLE_KINDS = ("python", "pipeline")
REMOTE = "remote"
# Which stage kinds each backend can run: ONNX files also feed TensorRT engine builds; a pipeline
# stage hands its networks to whichever backend the manifest names.
KINDS_BY_BACKEND = {"onnxruntime": {"onnx", "pipeline"}, "torch": {"torchscript", "pipeline"},
                    "tensorrt": {"tensorrt", "onnx", "pipeline"}}
MAX_TENSOR_NAME = 100  # stage names: MAX_STAGE_NAME, so the stage:<name> queue can take them
MAX_DESCRIPTION = 2_000  # a paragraph, shown in `abvoc candidates list`
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,49}$")
_CALLABLE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


@dataclass(frozen=True)
class TensorSpec:
    """One named V2 tensor: datatype and shape, -1 for a dimension of any size."""

    name: str
    datatype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class OutputSpec:
    """What the candidate answers: the type drives corrections and metrics."""

    type: str
    classes: tuple[str, ...] = ()
    schema: dict[str, Any] | None = None


@dataclass(frozen=True)
class Stage:
    """One step: an artifact file (`path`) or a `module:function` shipped in the bundle.
    `outputs` names a TorchScript stage's results in order (ONNX graphs name their own).
    `answer` names the result that reads as the candidate's output type: the stage's own answer,
    recorded with each prediction so an error can be blamed on the first stage that erred."""

    name: str
    kind: str
    path: str | None = None
    callable: str | None = None
    outputs: tuple[str, ...] | None = None
    answer: str | None = None


DEFAULT_TIMEOUT_MS = 30_000.0
UNBATCHED_WORKERS = 4
"""Threads that run an unbatched candidate's requests side by side (its stages are thread-safe,
as they are called from many request threads)."""


@dataclass(frozen=True)
class Batching:
    """How a local candidate's stages take requests: merged into batches of at most
    `max_batch_size` rows, waiting at most `max_batch_time_ms` for one to fill; each request
    gets its answer within `timeout_ms` (queueing included) or a 504 its guardrails count."""

    max_batch_size: int = 1
    max_batch_time_ms: float = 0.0
    timeout_ms: float = DEFAULT_TIMEOUT_MS

    @property
    def workers(self) -> int:
        """The threads that call the stages side by side: one forms and runs the batches;
        without batching, a few run single requests."""
        return 1 if self.max_batch_size > 1 else UNBATCHED_WORKERS


@dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    backend: str
    inputs: tuple[TensorSpec, ...]
    output: OutputSpec
    description: str = ""
    stages: tuple[Stage, ...] = ()
    batching: Batching = field(default_factory=Batching)
    requirements: dict[str, Any] = field(default_factory=dict)
    remote: RemoteSpec | None = None
    device: str = "auto"  # where the torch backend runs TorchScript stages and pipeline networks

    @property
    def is_remote(self) -> bool:
        return self.remote is not None

    @property
    def takes_images(self) -> bool:
        """An image pipeline bundle: served through /v1/predict, not V2 tensors."""
        return bool(self.stages) and self.stages[0].kind == "pipeline"

    def describe(self) -> dict[str, Any]:
        """The manifest as plain data for the registry's `pipeline` column."""
        out: dict[str, Any] = {
            "kind": "remote" if self.is_remote else "bundle",
            "inputs": [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)}
                       for t in self.inputs],
            "output": {"type": self.output.type},
            "takes": "image" if self.takes_images else "tensors",
            "serving": {"max_batch_size": self.batching.max_batch_size,
                        "max_batch_time_ms": self.batching.max_batch_time_ms,
                        "timeout_ms": self.batching.timeout_ms},
        }
        if self.backend == "torch":
            out["serving"]["device"] = self.device
        if self.output.classes:
            out["output"]["classes"] = list(self.output.classes)
        if self.output.schema is not None:
            out["output"]["schema"] = self.output.schema
        if self.stages:
            out["stages"] = [{k: list(v) if isinstance(v, tuple) else v
                              for k, v in vars(s).items() if v is not None}
                             for s in self.stages]
        if self.remote is not None:
            out["remote"] = {k: v for k, v in vars(self.remote).items() if v is not None}
        return out


_TOP_KEYS = {"name", "version", "description", "backend", "device", "inputs", "output",
             "stages", "batching", "requirements", "remote"}
_DEVICE = re.compile(r"(auto|cpu|cuda(:\d{1,2})?)\Z")


def load_manifest(folder: Path) -> Manifest:
    """The bundle's parsed manifest, or a ManifestError naming the file or key to fix."""
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise ManifestError(f"the bundle has no {MANIFEST_NAME} at its top level")
    try:
        return parse_manifest(tomllib.loads(path.read_text(encoding="utf-8")))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{MANIFEST_NAME} is not valid TOML: {exc}") from exc
    except RecursionError:  # tomllib (and a check) recurse once per level of nesting
        raise ManifestError(f"{MANIFEST_NAME} is nested too deeply (arrays or tables inside "
                            "each other thousands of levels down)") from None


def parse_manifest(data: dict[str, Any]) -> Manifest:
    """A Manifest from the TOML's data; pure, so it is tested without files."""
    no_unknown(data, _TOP_KEYS, "")
    name = string(data, "name", required=True)
    if not _NAME.fullmatch(name):
        raise ManifestError(f"name {name!r} must be lower-case letters, digits, '.', '_' or '-'"
                            " (at most 100, starting with a letter or digit)")
    version = str(get_value(data, "version", (str, int), required=True))
    if not _VERSION.fullmatch(version):
        # Say every rule: a 60-digit or a "-1" version was told it "must be letters, digits".
        shown_version = version if len(version) <= 60 else f"{version[:60]}…"
        raise ManifestError(f"version {shown_version!r} ({len(version)} characters) must be 1 to "
                            "50 letters, digits, '.', '_', '+' or '-', starting with a letter or "
                            "digit")
    remote = remote_spec(data["remote"]) if "remote" in data else None
    backend = string(data, "backend", required=remote is None) or REMOTE
    allowed = (REMOTE,) if remote is not None else BACKENDS
    if backend not in allowed:
        hint = "a [remote] candidate's backend is 'remote'" if remote else f"use one of {BACKENDS}"
        raise ManifestError(f"backend {backend!r} is unknown here; {hint}")
    device = string(data, "device") or "auto"
    if "device" in data and backend != "torch":
        raise ManifestError(f"device is the torch backend's setting; backend {backend!r} picks "
                            "its own (onnxruntime: the CPU, tensorrt: the GPU, remote: its server)")
    if not _DEVICE.match(device):
        raise ManifestError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    stages = tuple(_stage(s, i, backend) for i, s in enumerate(tables(data, "stages")))
    if remote is not None and stages:
        raise ManifestError("a [remote] candidate has no [[stages]]: its server runs them")
    if remote is not None and "batching" in data:
        raise ManifestError("a [remote] candidate has no [batching]: its server batches, and "
                            "remote.timeout_ms bounds each call")
    if remote is None and not stages:
        raise ManifestError("[[stages]] is missing: a bundle needs at least one stage")
    if any(s.kind == "pipeline" for s in stages) and len(stages) > 1:
        raise ManifestError("a 'pipeline' stage is the bundle's only stage: it runs the whole "
                            "image pipeline")
    names = [s.name for s in stages]
    if len(set(names)) != len(names):
        raise ManifestError(f"stages must have distinct names, got {names}")
    if stages and stages[-1].answer is not None:
        raise ManifestError(f"stages[{len(stages) - 1}].answer: the last stage's answer is the "
                            "candidate's output; name answers on the stages before it")
    inputs = tuple(_tensor(t, i) for i, t in enumerate(tables(data, "inputs")))
    if not inputs:
        raise ManifestError("[[inputs]] is missing: declare each input tensor's name, datatype "
                            "and shape")
    if len({t.name for t in inputs}) != len(inputs):
        raise ManifestError("inputs must have distinct names")
    if any(s.kind == "pipeline" for s in stages) and (
            len(inputs) != 1 or inputs[0].datatype == "BYTES"):
        raise ManifestError("a 'pipeline' bundle takes one image: declare one [[inputs]] "
                            "tensor of a numeric datatype (e.g. UINT8, shape [-1, -1])")
    if "output" not in data:
        raise ManifestError(f"[output] is missing: give its type, one of {OUTPUT_TYPES}")
    requirements = table(data, "requirements")
    try:
        requirements = validate_requirements(requirements)
    except AbvocError as exc:
        raise ManifestError(f"[requirements]: {exc.message}") from exc
    return Manifest(name=name, version=version, backend=backend, inputs=inputs,
                    output=_output(table(data, "output")),
                    description=free_text(data, "description", MAX_DESCRIPTION), stages=stages,
                    batching=_batching(table(data, "batching")), requirements=requirements,
                    remote=remote, device=device)


def _tensor(data: dict[str, Any], i: int) -> TensorSpec:
    where = f"inputs[{i}]"
    no_unknown(data, {"name", "datatype", "shape"}, where)
    name = identifier(data, "name", where, MAX_TENSOR_NAME)
    datatype = string(data, "datatype", where, required=True)
    if datatype not in DATATYPES:
        raise ManifestError(f"{where}.datatype {datatype!r} is not a V2 datatype; "
                            f"use one of {DATATYPES}")
    shape = dimensions(data, "shape", where)
    if (least := math.prod(max(d, 1) for d in shape)) > MAX_VALUES:
        raise ManifestError(f"{where}.shape {list(shape)} needs at least {least} values a "
                            f"request, more than the {MAX_VALUES} a request's tensor may hold "
                            "(a /v2 body is at most 32 MiB), so no request could be served: "
                            "declare smaller sizes, or -1 for a dimension of any size")
    return TensorSpec(name, datatype, shape)


def _output(data: dict[str, Any]) -> OutputSpec:
    no_unknown(data, {"type", "classes", "schema"}, "output")
    kind = string(data, "type", "output", required=True)
    if kind not in OUTPUT_TYPES:
        raise ManifestError(f"output.type {kind!r} is unknown; use one of {OUTPUT_TYPES}")
    classes = get_value(data, "classes", list, "output")
    schema = get_value(data, "schema", dict, "output")
    if kind == "label":
        if (problem := classes_problem(classes)) is not None:
            raise ManifestError(f"output.classes {problem}")
    elif classes is not None:
        raise ManifestError(f"output.classes is only for type 'label', not {kind!r}")
    if kind == "json":
        if schema is None:
            raise ManifestError("output.schema is missing: a 'json' output needs a JSON Schema")
        _check_schema(schema)
    elif schema is not None:
        raise ManifestError(f"output.schema is only for type 'json', not {kind!r}")
    return OutputSpec(kind, tuple(classes or ()), schema)


def _check_schema(schema: dict[str, Any]) -> None:
    from core.output_types import json_schema_validator

    try:
        json_schema_validator(schema)
    except Exception as exc:  # the library raises ValidationError or ValueError by version
        raise ManifestError(f"output.schema is not a valid JSON Schema: {exc}") from exc


def _stage(data: Any, i: int, backend: str) -> Stage:
    where = f"stages[{i}]"
    if not isinstance(data, dict):
        raise ManifestError(f"{where} must be a table")
    no_unknown(data, {"name", "kind", "path", "callable", "outputs", "answer"}, where)
    name = identifier(data, "name", where, MAX_STAGE_NAME)
    kind = string(data, "kind", where, required=True)
    if kind not in STAGE_KINDS:
        raise ManifestError(f"{where}.kind {kind!r} is unknown; use one of {STAGE_KINDS}")
    answer = string(data, "answer", where, required=True) if "answer" in data else None
    if kind in CALLABLE_KINDS:
        target = string(data, "callable", where, required=True)
        if "path" in data or "outputs" in data:
            raise ManifestError(f"{where}: a {kind} stage names a 'callable' only")
        if not _CALLABLE.fullmatch(target):
            raise ManifestError(f"{where}.callable {target!r} must be 'module:function'")
        return Stage(name, kind, callable=target, answer=answer)
    if "callable" in data:
        raise ManifestError(f"{where}: a {kind} stage names a 'path', not a 'callable'")
    outputs = get_value(data, "outputs", list, where)
    if outputs is not None:
        if kind != "torchscript":
            raise ManifestError(f"{where}.outputs is only for torchscript stages; {kind} "
                                "artifacts name their own outputs")
        if not outputs or not all(isinstance(o, str) and o for o in outputs) \
                or len(set(outputs)) != len(outputs):
            raise ManifestError(f"{where}.outputs must list distinct output names")
    if kind not in KINDS_BY_BACKEND.get(backend, set()):
        raise ManifestError(f"{where} is a {kind} stage, which backend {backend!r} cannot run")
    if answer is not None and outputs is not None and answer not in outputs:
        raise ManifestError(f"{where}.answer {answer!r} is not one of its outputs {outputs}")
    return Stage(name, kind, path=_relative(string(data, "path", where, required=True), where),
                 outputs=tuple(outputs) if outputs is not None else None, answer=answer)


def _relative(path: str, where: str) -> str:
    parts = Path(path).parts
    if Path(path).is_absolute() or ".." in parts or not parts:
        raise ManifestError(f"{where}.path {path!r} must be a relative path inside the bundle")
    return path


def _batching(data: dict[str, Any]) -> Batching:
    no_unknown(data, {"max_batch_size", "max_batch_time_ms", "timeout_ms"}, "batching")
    size = get_value(data, "max_batch_size", int, "batching")
    wait = get_value(data, "max_batch_time_ms", (int, float), "batching")
    timeout = get_value(data, "timeout_ms", (int, float), "batching")
    if size is not None and not 1 <= size <= 4096:
        raise ManifestError(f"batching.max_batch_size must be between 1 and 4096, got {size}")
    if wait is not None and not 0 <= wait <= 10_000:
        raise ManifestError(f"batching.max_batch_time_ms must be between 0 and 10000, got {wait}")
    if timeout is not None and not 1 <= timeout <= 600_000:
        raise ManifestError(f"batching.timeout_ms must be between 1 and 600000, got {timeout}")
    if timeout is not None and wait is not None and timeout <= wait:
        raise ManifestError(f"batching.timeout_ms ({timeout}) must be longer than "
                            f"batching.max_batch_time_ms ({wait})")
    return Batching(size or 1, float(wait or 0.0),
                    DEFAULT_TIMEOUT_MS if timeout is None else float(timeout))
