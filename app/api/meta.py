"""The API's own description (the candidate routes live in app/api/candidates.py)."""

from __future__ import annotations

from flask import Blueprint, jsonify

from app.openapi import openapi_document

bp = Blueprint("meta", __name__)


@bp.get("/openapi.json")
def openapi():  # noqa: ANN201
    return jsonify(openapi_document())

