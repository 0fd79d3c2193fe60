"""An id no row can have, in a path (0, or past a 64-bit key), is the resource's own 404 on
every route that takes one: it matched no route, so `/v1/experiments/0` and
`/v1/relabel/items/99999999999999999999` got werkzeug's "The requested URL was not found on
the server", where an id in range gets "experiment N does not exist"."""

from __future__ import annotations

import re

from flask import Flask

from app.path_ints import RowIdConverter
from core.ids import MAX_ROW_ID
from tests.support.keys import bearer

PART = re.compile(r"<(?:(\w+)(?:\(([^)]*)\))?:)?(\w+)>")


def _path(rule: str, converters: dict, number: int) -> str:
    """The rule's path with `number` for its row id, an `any` part's first word, and 'x' for
    any other part."""
    def part(m: re.Match) -> str:
        if isinstance(converters[m.group(3)], RowIdConverter):
            return str(number)
        return m.group(2).split(",")[0].strip() if m.group(1) == "any" else "x"

    return PART.sub(part, rule)


def test_an_id_no_row_can_have_is_the_resources_own_404(v2app: Flask) -> None:
    client, admin = v2app.test_client(), bearer(v2app, "admin")
    # The API's (the dashboard's CSV routes send a browser without a session to log in first).
    rules = [rule for rule in v2app.url_map.iter_rules() if rule.rule.startswith("/v1/")
             and any(isinstance(c, RowIdConverter) for c in rule._converters.values())]  # noqa: SLF001
    assert {"/v1/experiments/<row_id(\"experiment\"):experiment_id>",
            "/v1/relabel/items/<row_id(\"relabel item\"):item_id>"} <= {r.rule for r in rules}
    assert len(rules) >= 14  # every route with an experiment's or an item's id
    for rule in rules:
        converters = rule._converters  # noqa: SLF001
        what = next(c.what for c in converters.values() if isinstance(c, RowIdConverter))
        for number in (0, MAX_ROW_ID + 1, 10**20):
            path = _path(rule.rule, converters, number)
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                answer = client.open(path, method=method, headers=admin)
                assert (answer.status_code, answer.get_json()) == (404, {
                    "error": f"{what} {number} does not exist", "status": 404}), (method, path)
    # An id in range that no row has says the same.
    missing = client.get("/v1/experiments/5", headers=admin)
    assert missing.get_json()["error"] == "experiment 5 does not exist"
    missing = client.get("/v1/relabel/items/5", headers=admin)
    assert missing.get_json()["error"] == "relabel item 5 does not exist"
