"""The API's own description and the candidate list."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from app.auth import require
from app.openapi import openapi_document

bp = Blueprint("meta", __name__)


@bp.get("/openapi.json")
def openapi():  # noqa: ANN201
    return jsonify(openapi_document())


@bp.get("/v1/candidates")
@require("admin")
def candidates():  # noqa: ANN201
    registry = current_app.extensions["abvoc_serving"].registry
    return jsonify({"candidates": [c.to_dict() for c in registry.list()]})
