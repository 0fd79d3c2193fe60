"""A canary step under 0.5 % read '0%' traffic now on the Experiments page (and 0.0 % in
`abvoc experiment list` under 0.05 %), as a paused arm's does: a share that is not 0 is shown
with the digits it takes."""

from __future__ import annotations

from click.testing import CliRunner

from app.cli import main
from core.settings import Settings
from core.store.db import Database
from core.text import percent
from dashboards.pages import experiments as page
from serving.registry import Registry
from tests.support.dash_tree import component_text, find_component

ARMS = [{"name": "control", "candidate": "a", "weight": 1, "control": True},
        {"name": "canary", "candidate": "b", "weight": 1}]


def test_percent_shows_a_small_share_as_not_zero() -> None:
    assert [percent(x) for x in (0.0, 0.0001, 0.001, 0.004, 0.5, 1.0)] == \
        ["0%", "0.01%", "0.1%", "0.4%", "50%", "100%"]
    assert percent(0.9999, 1) == "100.0%" and percent(0.0001, 1) == "0.01%"


def test_the_pages_and_the_cli_show_a_small_canary_step(cli: CliRunner,
                                                       settings: Settings) -> None:
    with Database(settings.database_url) as db:
        Registry(db).register("a", "1")
        Registry(db).register("b", "1")
    spec = ('{"name": "e", "arms": [{"name": "control", "candidate": "a", "weight": 1, '
            '"control": true}, {"name": "canary", "candidate": "b", "weight": 1}], '
            '"canary": {"treatment": "canary", "steps": [0.0002, 0.01]}}')
    created = cli.invoke(main, ["experiment", "create", "--spec", "-"], input=spec)
    assert created.exit_code == 0, created.output
    assert "canary=b v1 0.02%" in created.output, created.output
    view = {"status": "running", "arms": ARMS, "weights": [0.9998, 0.0002],
            "canary": {"treatment": "canary", "steps": [0.0002, 0.01], "step": 0}}
    variants = [{"name": a["name"], "candidate": a["candidate"], "version": "1",
                 "shadow": False, "weight": 0.5} for a in ARMS]
    rows = find_component(page._arms({"variants": variants, "metrics": {}}, "all", view),
                          "exp-arms").children[1].children
    assert [component_text(tr.children[4]) for tr in rows] == ["100%", "0.02%"]
