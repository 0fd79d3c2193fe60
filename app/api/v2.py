"""The Open Inference Protocol (V2 REST) in front of abvoc's experiments, so a client of Triton,
KServe or MLServer switches to abvoc by changing its base URL. The "model" is the traffic scope:

    POST /v2/models/{scope}/infer   V2 tensors in; the router picks the candidate
    GET  /v2/models/{scope}         the inputs and outputs of the candidate the scope serves
    GET  /v2/models/{scope}/ready   that candidate is loaded (a remote one: its server answers)
    GET  /v2/health/live, /v2/health/ready

A scope has no model versions of its own (the router picks the candidate and its version for
each unit), so the protocol's `/versions/{version}` forms of the model routes answer a 404 that
says to leave the client's model version empty.

Tensors come as JSON or, with the binary tensor data extension Triton's clients use, as raw bytes
after a JSON header (`Inference-Header-Content-Length`); outputs go back as binary data when the
request asks (`parameters.binary_data_output`, or `binary_data` on an output); BYTES outputs in
JSON are plain UTF-8 strings marked `content_type: "str"` (as Triton's and MLServer's clients read
them), base64 marked so for an output asked with `content_type: "base64"` or a value that is not
UTF-8. Any Content-Type is read as V2; request parameters other than abvoc's own are the
clients' (Triton's timeout, MLServer's content_type) and pass unread. A request names its unit
(for sticky assignment) in `parameters.unit_id` or the `X-Abvoc-Unit-Id` header (two different
ids, one in each, are a 400), which only a scope whose experiment has unit `request` does
without; its `id` is echoed. The answer holds
an `output` tensor (the prediction, of the candidate's output type) and the candidate's own
output tensors; its `parameters` carry `prediction_id` and `receipt` (to
correct it through /v1/corrections), and for admin keys the candidate, arm and experiment. The
health routes and the server metadata (`GET /v2`) are open, as probes are; the model routes need
a `predict` key.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from flask import Blueprint, current_app, jsonify, request
from sqlalchemy.exc import SQLAlchemyError

from app.api.health import store_state, unreachable
from app.api.predict import forced_arm, slice_field
from app.api.v2_outputs import Asked, flag, outputs, wanted_outputs
from app.api.v2_outputs import answer as v2_answer
from app.auth import current_scopes, require
from app.inputs import InputRefused, read_json
from app.read_headers import FORCE_HEADER, UNIT_HEADER
from app.serving import serve
from app.unit_ids import request_unit
from core.errors import AbvocError, ConfigError, NotFound, refuse_unknown
from core.store import schema
from core.text import quoted_names
from core.v2_binary import BINARY_OUTPUT, KEPT
from serving.bundles.binary import HEADER as BINARY_HEADER
from serving.bundles.binary import Chunks, kept, read_tensor, split
from serving.bundles.tensors import MAX_V2_BODY_BYTES, MAX_VALUES, TensorError
from serving.predict import PredictRequest
from serving.servable import TENSORS

bp = Blueprint("v2", __name__)
UNIT_FROM = f"'parameters.unit_id' or the {UNIT_HEADER} header"
INFER_RULE = "/v2/models/<scope>/infer"
MAX_BODY_BYTES = MAX_V2_BODY_BYTES
_BODY_KEYS = {"id", "parameters", "inputs", "outputs"}
# What clients add to a body: KServe's client names the model (and its version) in it.
_CLIENT_KEYS = {"model_name", "model_version"}
# Tensor data may hold any finite FP64 (or a UINT64): each tensor is held to its own datatype.
TENSOR_NUMBER_BOUND = sys.float_info.max
EXTENSIONS = ["binary_tensor_data"]
_OUTPUT_DATATYPE = {"number": "FP64"}


class NotReady(AbvocError):
    status = 503


def _serving():  # noqa: ANN202
    return current_app.extensions["abvoc_serving"]


def _text(value: Any, where: str, limit: int) -> str:
    if not isinstance(value, str) or not value or len(value) > limit:
        raise AbvocError(f"{where} must be a non-empty string of at most {limit} characters")
    return value


def _scope(scope: str) -> str:
    return _text(scope, "the model name (the experiment's traffic scope)", 100)


@bp.get("/v2")
def server_metadata():  # noqa: ANN201
    """The protocol's server metadata (open, as the health routes are)."""
    return jsonify({"name": "abvoc", "version": _version(), "extensions": EXTENSIONS})


def _version() -> str:
    try:
        return importlib.metadata.version("abvoc")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree not installed
        return "unknown"


@bp.get("/v2/health/live")
def live():  # noqa: ANN201
    return jsonify({"live": True})


@bp.get("/v2/health/ready")
def ready():  # noqa: ANN201
    """Ready to take inference requests: the store that records them answers, migrated."""
    try:
        # Ahead: a newer node migrated it; serving.
        if store_state(current_app.extensions["abvoc"].db) == schema.BEHIND:
            raise NotReady("the database schema is not migrated; run `abvoc db upgrade`")
    except (ConfigError, SQLAlchemyError) as exc:
        raise NotReady(f"the store is {unreachable(str(getattr(exc, 'message', exc)))}") \
            from exc
    return jsonify({"ready": True})


def _candidate_of(scope: str) -> tuple[str, str | None]:
    """The candidate and version the scope serves by default: its experiment's control arm at
    the version the experiment pinned (not a newer one registered since), else the service's
    default candidate's newest version (as the router routes a request outside experiments)."""
    serving = _serving()
    experiment = serving.router.experiment(scope)
    if experiment is None:
        try:
            return serving.predict.default_candidate(scope), None
        except NotFound:
            experiment = serving.router.reloaded(scope)  # started since the router's last load
            if experiment is None:
                raise
    control = next(a for a in experiment["arms"] if a["control"])
    return control["candidate"], control.get("version")


@bp.get("/v2/models/<scope>")
@require("predict")
def metadata(scope: str):  # noqa: ANN201
    scope = _scope(scope)
    info = _serving().registry.get(*_candidate_of(scope))
    described = info.pipeline
    if described.get("kind") not in ("bundle", "remote") or described.get("takes") == "image":
        raise AbvocError(f"scope {scope!r} serves images (candidate of kind "
                         f"{described.get('kind') or 'image pipeline'}): use POST /v1/predict")
    output = described.get("output") or {}
    kind = output.get("type", "json")
    body: dict[str, Any] = {
        "name": scope, "platform": "abvoc",
        "inputs": [_one_item(t, kind) for t in described.get("inputs") or []],
        "outputs": [{"name": "output", "datatype": _OUTPUT_DATATYPE.get(kind, "BYTES"),
                     "shape": [1], "parameters": {"output_type": kind,
                                                  **({"classes": output["classes"]}
                                                     if output.get("classes") else {})}}],
    }
    if "admin" in current_scopes():
        # Not the protocol's `versions`: those are versions a client may request, and a scope
        # has none of its own (the router picks per unit), so the candidate's is a parameter.
        body["parameters"] = {"candidate": info.name, "candidate_version": info.version}
    return jsonify(body)


def _one_item(tensor: dict[str, Any], kind: str) -> dict[str, Any]:
    """An input as a request gives it: one item on the batch axis (-1 first) of a candidate
    whose answer is one prediction (servable.one_item), any number for JSON answers."""
    shape = tensor["shape"]
    if kind != "json" and shape and shape[0] == -1:
        return {**tensor, "shape": [1, *shape[1:]]}
    return tensor


@bp.get("/v2/models/<scope>/ready")
@require("predict")
def model_ready(scope: str):  # noqa: ANN201
    """Ready when every candidate a unit may be routed to is: each arm taking traffic (a
    remote one's server answers ready), not only the control (half the units of a 50/50 split
    failed while the scope said ready)."""
    scope = _scope(scope)
    serving = _serving()
    for candidate, version in _serving_candidates(scope):
        model = serving.pool.get(candidate, version)
        if model.accepts != TENSORS:
            raise AbvocError(f"scope {scope!r} serves images, not V2 tensors: use POST "
                             "/v1/predict")
        client = getattr(model, "client", None)
        if client is not None and not client.ready():
            # Not which arm: only admin keys learn which candidate serves a unit.
            raise NotReady(f"scope {scope!r}: the remote server of a candidate it routes to "
                           "does not answer ready")
    return jsonify({"name": scope, "ready": True})


def _serving_candidates(scope: str) -> list[tuple[str, str | None]]:
    """The candidates (and versions) the scope routes units to now: its experiment's arms with
    a share of the traffic it follows now (`weights`: a paused arm's, a paused or killed
    experiment's go to control), else the scope's default candidate."""
    experiment = _serving().router.experiment(scope)
    if experiment is None:
        return [_candidate_of(scope)]
    return [(a["candidate"], a.get("version"))
            for a, share in zip(experiment["arms"], experiment["weights"], strict=True)
            if share > 0]


@bp.route("/v2/models/<scope>/versions/<version>", methods=["GET"])
@bp.route("/v2/models/<scope>/versions/<version>/ready", methods=["GET"])
@bp.route("/v2/models/<scope>/versions/<version>/infer", methods=["POST"])
@require("predict")
def versioned(scope: str, version: str):  # noqa: ANN201
    scope = _scope(scope)
    raise NotFound(f"scope {scope!r} has no model version {version[:100]!r}: abvoc's router picks "
                   "the candidate and its version for each unit; send to "
                   f"/v2/models/{scope}/infer (leave the client's model version empty)")


@bp.url_value_preprocessor
def _bound_body(endpoint: str | None, values: dict[str, Any] | None) -> None:
    """Inference requests may be larger than the service's other bodies (Flask runs this before
    the size check every request gets)."""
    if endpoint in ("v2.infer", "v2.versioned"):
        request.max_content_length = MAX_BODY_BYTES
        request.json_number_bound = TENSOR_NUMBER_BOUND  # app.inputs reads it


@bp.post(INFER_RULE)
@require("predict")
def infer(scope: str):  # noqa: ANN201
    """The Flask route of inference; well-formed JSON requests take the V2 lane
    (app.api.v2_lane) around Flask, through the same functions."""
    _scope(scope)
    body, chunks = _body()
    call = read_infer(scope, body, chunks, request.headers.get, "admin" in current_scopes())
    return v2_answer(*reply(call, serve(call.request)), call.wanted)


@dataclass(frozen=True)
class Infer:
    """One inference request, read: what the router serves, and how the answer is written."""

    request: PredictRequest
    request_id: str | None
    wanted: dict[str, Asked] | None
    admin: bool


def read_infer(scope: str, body: Any, chunks: Chunks | None,
               header: Callable[[str], str | None], admin: bool) -> Infer:
    """The request to serve from a parsed body (and its binary part), the request's headers
    (`header(name)`) and whether its key is an admin's; an AbvocError says what is wrong."""
    scope = _scope(scope)
    if not isinstance(body, dict):
        raise AbvocError("send a V2 inference request: a JSON object with 'inputs' (a list of "
                         f"tensors), and the unit in {UNIT_FROM}")
    if not set(body) <= _BODY_KEYS | _CLIENT_KEYS:  # clients' own keys pass, unnamed
        refuse_unknown(set(body) - _CLIENT_KEYS, _BODY_KEYS, known="a V2 request has:")
    _same_model(scope, body)
    request_id = None if body.get("id") is None else _id(body["id"])
    # null is no parameters (a client's optional field); [] or false is no object, as for a
    # tensor's 'parameters', where `or {}` had taken them as none
    params = {} if body.get("parameters") is None else body["parameters"]
    if not isinstance(params, dict):
        raise AbvocError("'parameters' must be an object")
    # Other request parameters are the clients' own (MLServer's content_type, Triton's timeout
    # and priority): the protocol leaves them to each server, and abvoc reads only these.
    all_binary = flag(params.get(BINARY_OUTPUT), f"'parameters.{BINARY_OUTPUT}'")
    # Optional here: the router asks for it unless the scope's experiment has unit `request`.
    unit_id = request_unit(params.get("unit_id"), "'parameters.unit_id'", header(UNIT_HEADER))
    slice_ = None if params.get("slice") is None \
        else slice_field(_text(params["slice"], "'slice'", 100))
    inputs = _inputs(body.get("inputs"), chunks)
    wanted = wanted_outputs(body.get("outputs"), all_binary)
    force = forced_arm(header(FORCE_HEADER), admin)
    predict = PredictRequest(payload=inputs, input_hash=_hash(inputs), unit_id=unit_id,
                             scope=scope, slice=slice_, force_arm=force, kind=TENSORS,
                             request_id=request_id, raw_input=kept(inputs), raw_kind=KEPT,
                             unit_from=UNIT_FROM)
    return Infer(predict, request_id, wanted, admin)


def reply(call: Infer, answer: dict[str, Any]
          ) -> tuple[dict[str, Any], list[tuple[str, np.ndarray]]]:
    """The answer's JSON fields and the tensors it holds, for v2_outputs to write."""
    scope = call.request.scope
    parameters: dict[str, Any] = {"prediction_id": answer["prediction_id"],
                                  "receipt": answer["receipt"]}
    if call.admin:
        parameters.update({k: answer[k] for k in ("candidate", "arm", "experiment_id",
                                                  "latency_ms")})
        if answer["excluded"]:  # V2 parameters are flat: the reason and the experiment in words
            kept_out = answer["excluded"]
            parameters["excluded"] = (f"{kept_out['reason']}: kept out of experiment "
                                      f"{kept_out['experiment_id']}'s results")
    out: dict[str, Any] = {"model_name": scope, "parameters": parameters}
    if call.request_id is not None:
        out["id"] = call.request_id
    return out, outputs(answer, call.wanted)


def _same_model(scope: str, body: dict[str, Any]) -> None:
    """A body that names its model (as KServe's client does) names the one in the URL, with no
    version (the router picks the version)."""
    name, version = body.get("model_name"), body.get("model_version")
    if name is not None and name != scope:
        raise AbvocError(f"'model_name' is {str(name)[:100]!r} but the URL's model is "
                         f"{scope!r}; leave it out or make them the same")
    if version not in (None, ""):
        raise AbvocError(f"'model_version' is {str(version)[:100]!r}: abvoc's router picks the "
                         "candidate and its version for each unit; leave it empty")


def _id(value: Any) -> str:
    if not isinstance(value, str) or len(value) > 200:
        raise AbvocError("'id' must be a string of at most 200 characters")
    return value


def _body() -> tuple[Any, Chunks | None]:
    """The request's JSON and, with the binary extension, the binary part after it. Any
    Content-Type is read as V2 (Triton's client sends none); a JSON body was parsed already."""
    header_length = request.headers.get(BINARY_HEADER)
    if header_length is None:
        if request.is_json:
            return request.get_json(silent=True), None
        data = request.get_data(cache=True)
        try:
            return (read_json(data) if data.strip() else None), None
        except InputRefused as exc:
            if not exc.message.startswith("the request body is not valid"):
                raise
            raise InputRefused(f"{exc.message}; binary tensor data goes after the JSON, whose "
                               f"length the {BINARY_HEADER} header gives") from None
    head, rest = split(request.get_data(cache=True), header_length)
    return read_json(head), Chunks(rest)


def _inputs(raw: Any, chunks: Chunks | None) -> dict[str, np.ndarray]:
    if not isinstance(raw, list) or not raw:
        raise AbvocError("'inputs' must be a non-empty list of V2 tensors "
                         "({name, datatype, shape, data})")
    inputs: dict[str, np.ndarray] = {}
    for i, tensor in enumerate(raw):
        if not isinstance(tensor, dict):
            raise TensorError(f"inputs[{i}] must be a tensor object")
        name = tensor.get("name")
        if not isinstance(name, str) or not name:
            raise TensorError(f"inputs[{i}] needs a 'name'")
        if name in inputs:
            raise TensorError(f"input {name!r} is given twice")
        unknown = sorted(set(tensor) - {"name", "datatype", "shape", "data", "parameters"})
        if unknown:
            raise TensorError(f"input {name!r}: unknown key(s) {quoted_names(unknown)}")
        if not isinstance(tensor.get("parameters", {}), dict):
            raise TensorError(f"input {name!r}: 'parameters' must be an object")
        shape = tensor.get("shape")
        if isinstance(shape, list) and any(isinstance(d, bool) for d in shape):
            raise TensorError(f"input {name!r}: shape must be a list of integer sizes")
        if isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape) \
                and math.prod(shape) > MAX_VALUES:
            raise TensorError(f"input {name!r}: shape {shape} holds more than {MAX_VALUES} "
                              "values; send a smaller tensor")
        inputs[name] = read_tensor(tensor, chunks)
    if chunks is not None:
        chunks.finish()
    return inputs


def _hash(inputs: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(inputs):
        array = inputs[name]
        digest.update(f"{name}|{array.dtype.kind}|{list(array.shape)}|".encode())
        if array.dtype == object:
            for v in array.flat:
                digest.update(v if isinstance(v, bytes) else str(v).encode())
                digest.update(b"\x00")
        else:
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:32]
