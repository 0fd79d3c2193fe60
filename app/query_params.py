"""Query parameters a route does not take, or one it takes given twice, are refused with a 400
that names them and the ones it takes (core.query.check_query): a typo (`?verison=2`) was
ignored, and the answer given for the default read as the answer asked for. What each route
takes is read from the OpenAPI document, so the check and the document cannot drift apart.
Routes the document does not describe (the dashboard's) are left alone."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask, request

from app.auth import check_key
from app.openapi import openapi_document
from core.query import check_query

_CHOICE = re.compile(r"<any\(([^)]*)\):\w+>")
_VARIABLE = re.compile(r"<(?:[^:>]+:)?(\w+)>")


def documented_paths(rule: str) -> list[str]:
    """The OpenAPI paths a Flask rule serves (`<any(html, pdf):fmt>` is one path per choice)."""
    if match := _CHOICE.search(rule):
        return [path for choice in match.group(1).split(",")
                for path in documented_paths(rule.replace(match.group(0), choice.strip()))]
    return [_VARIABLE.sub(r"{\1}", rule)]


def _taken(document: dict[str, Any]) -> dict[tuple[str, str], frozenset[str]]:
    """(path, METHOD) -> the query parameters the document gives it."""
    out = {}
    for path, item in document["paths"].items():
        shared = item.get("parameters", [])
        for method, operation in item.items():
            if method == "parameters":
                continue
            out[(path, method.upper())] = frozenset(
                p["name"] for p in [*shared, *operation.get("parameters", [])]
                if p.get("in") == "query")
    return out


def init_app(app: Flask) -> None:
    """Check every documented route's query string (called once its routes are registered)."""
    taken = _taken(openapi_document())
    by_rule: dict[tuple[str, str], tuple[str, ...]] = {}
    for rule in app.url_map.iter_rules():
        for method in rule.methods or ():
            names = [taken[key] for path in documented_paths(rule.rule)
                     if (key := (path, "GET" if method == "HEAD" else method)) in taken]
            if names:
                by_rule[(rule.rule, method)] = tuple(sorted(frozenset().union(*names)))

    @app.before_request
    def refuse_unknown_query_parameters() -> None:
        if not request.query_string or request.url_rule is None:
            return
        allowed = by_rule.get((request.url_rule.rule, request.method))
        if allowed is None:
            return
        # A caller without a valid key learns nothing of what a route takes: 401/403 first.
        scope = getattr(app.view_functions.get(request.endpoint or ""), "required_scope", None)
        if scope is not None:
            check_key(scope)
        check_query(request.args, *allowed)
