"""The admin API for candidates: list, register a bundle by upload, show one, retire.

    POST /v1/candidates            multipart/form-data, one file field `bundle` (a .tar.gz);
                                   `?check_remote=false` registers a [remote] candidate
                                   without asking its server (serving.bundles.remote_check)
    GET  /v1/candidates            the active candidates; `?all=1` the retired ones too
    GET  /v1/candidates/<name>     the latest active version; `?version=` any version
    POST /v1/candidates/<name>/retire   every active version; `?version=` one

An upload is bounded before it is read: it must say its Content-Length, and the admin check and
the size limit run in a URL-value preprocessor, which Flask runs before any `before_request`
hook, so no hook that reads the form can pull in an oversized body or an anonymous caller's
upload first.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any
from urllib.parse import quote

from flask import Blueprint, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.utils import secure_filename

from app.auth import require
from app.inputs import optional_json
from core.errors import AbvocError, refuse_unknown
from core.folders import scratch_folder
from serving.bundles import Limits, register_bundle, retire_candidate, still_served
from serving.bundles.archive import ARCHIVE_SUFFIXES

bp = Blueprint("candidates", __name__)
FIELD = "bundle"
# Multipart framing around the archive: boundaries and part headers.
FORM_OVERHEAD = 64 << 10


class TooLarge(AbvocError):
    status = 413


def bundle_limit() -> int:
    """The largest bundle archive an upload may carry (app config `MAX_BUNDLE_BYTES`)."""
    return int(current_app.config.get("MAX_BUNDLE_BYTES") or Limits().max_archive_bytes)


_admin_only = require("admin")(lambda: None)


def _too_large() -> TooLarge:
    return TooLarge(f"the upload is larger than the bundle limit of {bundle_limit()} bytes; "
                    "make the bundle smaller or ask an operator to raise MAX_BUNDLE_BYTES")


@bp.url_value_preprocessor
def _bound_uploads(endpoint: str | None, values: dict[str, Any] | None) -> None:
    if endpoint != "candidates.register" or request.method != "POST":
        return
    _admin_only()  # refuse a caller without the scope before a byte of the body is read
    if request.content_length is None:
        # A chunked body could only be measured by reading it; werkzeug's parser would also
        # leave its half-written temporary file open when cut off at the limit.
        raise AbvocError("an upload needs a Content-Length header: send the bundle as a plain "
                         "(not chunked) multipart body", status=411)
    limit = bundle_limit() + FORM_OVERHEAD
    request.max_content_length = limit
    if request.content_length > limit:
        raise _too_large()


@bp.errorhandler(RequestEntityTooLarge)
def _entity_too_large(_exc: RequestEntityTooLarge):  # noqa: ANN202
    err = _too_large()
    return jsonify(err.to_dict()), err.status


def _registry():  # noqa: ANN202
    return current_app.extensions["abvoc_serving"].registry


@bp.get("/v1/candidates")
@require("admin")
def list_candidates():  # noqa: ANN201
    everything = _flag("all")  # as `abvoc candidates list --all`
    return jsonify({"candidates": [c.to_dict(shares=False)
                                   for c in _registry().list(include_retired=everything)]})


@bp.post("/v1/candidates")
@require("admin")
def register():  # noqa: ANN201
    if request.mimetype != "multipart/form-data":
        raise AbvocError(f"send multipart/form-data with the bundle as a .tar.gz file in the "
                         f"field '{FIELD}'")
    refuse_unknown([*request.form, *request.files], {FIELD}, noun="form field(s)",
                   known="send only the file field")
    uploads = request.files.getlist(FIELD)
    if len(uploads) != 1:
        raise AbvocError(f"send exactly one file in the field '{FIELD}' (a .tar.gz of the bundle "
                         f"folder), got {len(uploads)}")
    upload = uploads[0]
    given = upload.filename or "bundle.tar.gz"
    suffix = next((s for s in ARCHIVE_SUFFIXES if given.endswith(s)), None)
    if suffix is None:
        raise AbvocError(f"field '{FIELD}': {upload.filename!r} is not a .tar.gz; upload the "
                         "bundle folder as a gzipped tar archive")
    # The name only labels messages; secure_filename drops a leading dot ('.tar.gz' -> 'tar.gz').
    name = secure_filename(given)
    if not name.endswith(suffix):
        name = "bundle" + suffix
    models = Path(current_app.extensions["abvoc"].settings.models_dir)
    scratch = scratch_folder(models / "bundles", ".upload-")
    try:
        archive = scratch / name
        upload.save(archive)
        if archive.stat().st_size > bundle_limit():
            raise _too_large()
        info = register_bundle(_registry(), models, archive,
                               Limits(max_archive_bytes=bundle_limit()),
                               check_remote=_check_remote())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    response = jsonify(info.to_dict())
    response.headers["Location"] = (f"/v1/candidates/{quote(info.name, safe='')}"
                                    f"?version={quote(info.version, safe='')}")
    return response, 201


@bp.get("/v1/candidates/<name>")
@require("admin")
def show(name: str):  # noqa: ANN201
    return jsonify(_registry().get(name, _version()).to_dict())


@bp.post("/v1/candidates/<name>/retire")
@require("admin")
def retire(name: str):  # noqa: ANN201
    _no_body()
    retired = retire_candidate(_registry(), name, _version())
    return jsonify({"retired": [c.to_dict() for c in retired],
                    "still_served": still_served(_registry(), retired)})


def _no_body() -> None:
    """Retire reads no body (the version is the query's): a body naming one was ignored and
    every active version retired, which cannot be undone. Nothing, or `{}`, is taken."""
    body = optional_json()
    if body != {}:
        raise AbvocError("retire takes no body: name one version in the query "
                         "(POST /v1/candidates/<name>/retire?version=V); without it every "
                         "active version is retired")


def _flag(name: str) -> bool:
    """A yes/no query parameter: absent is no, bare (`?all`) yes; anything but 1/true/yes or
    0/false/no (as the OpenAPI document's enum says) is a 400, so a misspelt value never silently
    lists less."""
    raw = request.args.get(name)
    if raw is None or raw in ("0", "false", "no"):
        return False
    if raw in ("", "1", "true", "yes"):
        return True
    raise AbvocError(f"'{name}' must be 1 (or true, yes) or 0 (or false, no), got {raw[:20]!r}")


def _check_remote() -> bool:
    """`check_remote`, a boolean as the OpenAPI document declares it: absent is true."""
    raw = request.args.get("check_remote", "true")
    if raw not in ("true", "false"):
        raise AbvocError(f"'check_remote' must be true or false, got {raw[:20]!r}")
    return raw == "true"


def _version() -> str | None:
    version = request.args.get("version")
    if version is not None and (not version or len(version) > 50):
        raise AbvocError("'version' must be a candidate version of 1 to 50 characters")
    return version
