"""What a V2 answer holds and how: the outputs a request asks for (all, or by name; as binary
data or JSON; BYTES as text or base64), and the answer written so (a JSON body, or a JSON header
followed by the binary data of the outputs asked for so)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from flask import Response, current_app

from core.errors import AbvocError
from core.text import quoted_names
from core.v2_binary import BASE64, TEXT
from serving.bundles.binary import HEADER as BINARY_HEADER
from serving.bundles.binary import to_binary
from serving.bundles.tensors import to_v2


def flag(value: Any, where: str) -> bool:
    if value is not None and not isinstance(value, bool):
        raise AbvocError(f"{where} must be true or false")
    return bool(value)


class Asked(NamedTuple):
    """How the request wants one output: as binary data, or in JSON; BYTES in JSON go as plain
    UTF-8 strings (`content_type` "str", as Triton's and MLServer's clients read them) unless
    asked as base64 or not UTF-8."""

    binary: bool
    text: bool = True


def wanted_outputs(raw: Any, all_binary: bool) -> dict[str, Asked] | None:
    """The outputs asked for and how; None: all of them, as JSON; {"*": ...}: all of them, as
    binary data (`binary_data_output`)."""
    if raw is None or raw == []:  # none named: all of them, as MLServer answers []
        return {"*": Asked(binary=True)} if all_binary else None
    if not isinstance(raw, list) or not all(
            isinstance(o, dict) and isinstance(o.get("name"), str) for o in raw):
        raise AbvocError("'outputs' must be a list of {\"name\": ...} objects")
    wanted = {}
    for o in raw:
        where = f"output {o['name']!r}"
        if o["name"] in wanted:  # as for inputs: which of its two ways was meant is not known
            raise AbvocError(f"{where} is asked for twice; name each output once")
        unknown = sorted(set(o) - {"name", "parameters"})
        if unknown:  # as for inputs: a misspelt key would be a request silently changed
            raise AbvocError(f"{where}: unknown key(s) {quoted_names(unknown)}; an output "
                             "asked for has 'name' and 'parameters'")
        params = o.get("parameters", {})
        if not isinstance(params, dict) or set(params) - {"binary_data", "content_type"}:
            raise AbvocError(f"{where}: the parameters abvoc reads are 'binary_data' (true or "
                             "false) and 'content_type' ('str' or 'base64', for BYTES in JSON); "
                             "for a label ask for the 'output' tensor, which holds it")
        content_type = params.get("content_type")
        if content_type not in (None, TEXT, BASE64):
            raise AbvocError(f"{where}: 'parameters.content_type' must be {TEXT!r} (BYTES as "
                             f"plain UTF-8 strings) or {BASE64!r}")
        wanted[o["name"]] = Asked(
            flag(params.get("binary_data", all_binary), f"{where}: 'parameters.binary_data'"),
            content_type != BASE64)
    return wanted


def outputs(answer: dict[str, Any], wanted: dict[str, Asked] | None
             ) -> list[tuple[str, np.ndarray]]:
    """The prediction as the `output` tensor, then the candidate's own tensors; only those
    asked for when the request names its `outputs`."""
    value = answer["output"]
    if answer["output_type"] == "number":
        first = np.array([value], dtype=np.float64)
    else:
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        first = np.array([text], dtype=object)
    tensors = [("output", first)]
    tensors += [(n, a) for n, a in answer["tensors"].items() if n != "output"]
    if wanted is None or "*" in wanted:
        return tensors
    missing = sorted(set(wanted) - {n for n, _ in tensors})
    if missing:
        # Candidates of one scope may answer different tensors; 'output' is every one's.
        raise AbvocError(f"output(s) {quoted_names(missing)} are not among the tensors the "
                         "candidate serving this unit answers "
                         f"({quoted_names(n for n, _ in tensors)}); ask for 'output', "
                         "which every candidate answers, or for tensors every candidate of "
                         f"the scope has (prediction {answer['prediction_id']} was recorded)",
                         # its receipt, so the caller can still correct it or report an outcome
                         details={"prediction_id": answer["prediction_id"],
                                  "receipt": answer["receipt"]})
    return [t for t in tensors if t[0] in wanted]


def answer(out: dict[str, Any], tensors: list[tuple[str, np.ndarray]],
           wanted: dict[str, Asked] | None) -> Response:
    """The V2 answer as a Flask response (:func:`encoded`)."""
    data, mimetype, headers = encoded(out, tensors, wanted, current_app.json.dumps)
    return Response(data, mimetype=mimetype, headers=headers)


def encoded(out: dict[str, Any], tensors: list[tuple[str, np.ndarray]],
            wanted: dict[str, Asked] | None, dumps: Callable[[Any], str]
            ) -> tuple[bytes, str, dict[str, str]]:
    """The V2 answer's body, media type and extra headers: JSON (written by `dumps`, the app's
    JSON provider), or a JSON header and the binary data of the outputs asked for so."""
    asked = {n: (wanted.get(n) or wanted.get("*") or Asked(False)) if wanted else Asked(False)
             for n, _ in tensors}
    out["outputs"], raws = [], []
    for name, array in tensors:
        if asked[name].binary:
            tensor, raw = to_binary(name, array)
            raws.append(raw)
        else:
            tensor = to_v2(name, array, text=asked[name].text)
        out["outputs"].append(tensor)
    if not raws:
        return f"{dumps(out)}\n".encode(), "application/json", {}
    head = dumps(out).encode()
    return b"".join([head, *raws]), "application/octet-stream", {BINARY_HEADER: str(len(head))}
