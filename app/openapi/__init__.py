"""The OpenAPI 3 document for every endpoint, served at /openapi.json (schemathesis checks it)."""

from app.openapi.document import openapi_document
from app.openapi.links import OPERATION_IDS
from app.openapi.parts import SAMPLE_IMAGE

__all__ = ["OPERATION_IDS", "SAMPLE_IMAGE", "openapi_document"]
