"""Checking a [remote] manifest against the server it names, before it is registered.

A local bundle whose artifact does not load is refused at registration; the remote equivalent
is a server that does not serve the named model (a typo in `remote.model` or
`remote.version`), does not answer at all, or declares inputs other than the manifest's.
Registered anyway, such a candidate would fail every request it is routed and its experiment's
guardrail would pause the arm; refused, the admin reads what to fix. The check asks the model's
V2 metadata and readiness (`GET /v2/models/{model}[/versions/{v}]` and `.../ready`), and
compares the inputs where the server declares them (MLServer and KServe leave them empty unless
the model's settings name them). A team registering before its server is up skips the check
(`abvoc candidates register --no-check-remote`, `POST /v1/candidates?check_remote=false`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from serving.bundles.manifest import Manifest, ManifestError, RemoteSpec
from serving.bundles.stages import InputInfo, fixed_dims
from serving.bundles.validate import match_signature

if TYPE_CHECKING:
    from serving.remote import RemoteError

# How long the check waits for each of its two calls: a registration is not a request on the
# serving path, and a server on a busy host may take longer than its inference deadline.
CHECK_TIMEOUT_MS = 5000.0
SKIP_HINT = ("register with --no-check-remote (POST /v1/candidates?check_remote=false) to skip "
             "this check")


def check_served(manifest: Manifest, timeout_ms: float = CHECK_TIMEOUT_MS) -> None:
    """Refuse (ManifestError naming the field) a remote manifest whose server does not serve
    its model ready, or declares inputs that do not match the manifest's."""
    # Imported here: serving.remote imports this package (the manifest, the tensor codecs),
    # whose __init__ imports this module, so a top-level import would be circular.
    from serving.remote import RemoteClient, RemoteError

    spec = manifest.remote
    if spec is None:
        return
    with RemoteClient(spec.url, spec.model, spec.version, timeout_ms=timeout_ms,
                      pool_size=1) as client:
        try:
            metadata = client.metadata()
        except RemoteError as exc:
            raise ManifestError(_unserved(spec, exc)) from exc
        if not client.ready():
            raise ManifestError(f"remote.model: {_model(spec)} at {client.shown_url} is not "
                                "ready (its /ready route did not answer 200); load it on the "
                                f"server first, or {SKIP_HINT}")
        if spec.binary_data and _server_name(client) == "mlserver":
            # MLServer refuses binary tensors: every call would fail (a 502 each).
            raise ManifestError("remote.binary_data: the server is Seldon MLServer, which does "
                                "not read the binary tensor data extension; set binary_data = "
                                "false (V2 JSON)")
    declared = _declared_inputs(metadata.get("inputs"))
    if declared:
        match_signature(manifest, declared, f"remote {_model(spec)}")


def _server_name(client: Any) -> str | None:
    """The server's own name from its metadata (`GET /v2`), lower-case; None if unsaid."""
    from serving.remote import RemoteError

    try:
        name = client.server_metadata().get("name")
    except RemoteError:
        return None
    return name.lower() if isinstance(name, str) else None


def _model(spec: RemoteSpec) -> str:
    return f"model {spec.model!r}" + (f" version {spec.version!r}" if spec.version else "")


def _unserved(spec: RemoteSpec, exc: RemoteError) -> str:
    """What to fix, after the client's own words (which name the model and the server)."""
    status, said = exc.remote_status, exc.message
    if status == 404:
        field = "remote.version" if spec.version else "remote.model"
        return (f"{field}: {said} (the server does not serve {_model(spec)}); check "
                "remote.model and remote.version against the names the server loaded")
    if status is None:
        return (f"remote.url: {said}; start the server (or correct remote.url), or {SKIP_HINT}")
    return f"remote: asking for the model's metadata failed: {said}; {SKIP_HINT}"


def _declared_inputs(inputs: Any) -> tuple[InputInfo, ...]:
    """The inputs the server's metadata declares, as a stage's would be (a -1 or a missing
    dimension is open); empty when it declares none or says them in a form V2 does not."""
    if not isinstance(inputs, list):
        return ()
    declared = []
    for tensor in inputs:
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            return ()
        shape = tensor.get("shape")
        dims = fixed_dims(shape) if isinstance(shape, list) else None
        datatype = tensor.get("datatype")
        declared.append(InputInfo(tensor["name"],
                                  datatype if isinstance(datatype, str) else None, dims))
    return tuple(declared)
