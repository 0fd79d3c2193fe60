"""`abvoc experiment pause-arm` and `resume-arm`: one arm's traffic to control and back from the
command line, as POST /v1/experiments/{id}/arms/{arm}/pause|resume does."""

from __future__ import annotations

import json

from click.testing import CliRunner

from app.cli import main
from core.settings import Settings
from core.store.db import Database
from serving.registry import Registry


def _running(cli: CliRunner, settings: Settings) -> int:
    with Database(settings.database_url) as db:
        Registry(db).register("iris", "1")
    created = cli.invoke(main, ["experiment", "create", "--name", "arms", "--scope", "flowers",
                                "--arm", "c=iris:0.5", "--arm", "t=iris:0.5", "--json"])
    assert created.exit_code == 0, created.output
    exp = json.loads(created.output)["id"]
    assert cli.invoke(main, ["experiment", "start", str(exp)]).exit_code == 0
    return exp


def test_an_arm_is_paused_and_resumed(cli: CliRunner, settings: Settings) -> None:
    exp = _running(cli, settings)
    paused = cli.invoke(main, ["experiment", "pause-arm", str(exp), "t", "--reason",
                               "latency spike", "--json"])
    assert paused.exit_code == 0, paused.output
    view = json.loads(paused.output)
    assert view["weights"] == [1.0, 0.0] and view["arms"][1]["paused"] == "latency spike"
    assert view["status"] == "running" and "latency spike" in view["status_reason"]
    shown = cli.invoke(main, ["experiment", "show", str(exp)]).output
    assert "t=iris v1 0.0% [paused: latency spike]" in shown, shown
    # Without a reason, an operator's pause says so.
    cli.invoke(main, ["experiment", "resume-arm", str(exp), "t"])
    again = json.loads(cli.invoke(main, ["experiment", "pause-arm", str(exp), "t",
                                         "--json"]).output)
    assert again["arms"][1]["paused"] == "paused by an operator"
    resumed = cli.invoke(main, ["experiment", "resume-arm", str(exp), "t", "--json"])
    assert resumed.exit_code == 0, resumed.output
    view = json.loads(resumed.output)
    assert view["weights"] == [0.5, 0.5] and view["arms"][1]["paused"] is None


def test_mistakes_are_refused(cli: CliRunner, settings: Settings) -> None:
    exp = _running(cli, settings)
    for args, code, said in (
            (["pause-arm", str(exp), "nope"], 2, "has no arm 'nope'"),
            (["resume-arm", "99", "t"], 2, "does not exist"),
            (["pause-arm", str(exp), "t", "--reason", "x" * 501], 2, "at most 500 characters"),
            (["kill", str(exp), "--reason", "x" * 501], 2, "at most 500 characters")):
        refused = cli.invoke(main, ["experiment", *args])
        assert refused.exit_code == code and said in refused.output, (args, refused.output)
    # A huge arm name is named by its size, not echoed whole.
    huge = cli.invoke(main, ["experiment", "pause-arm", str(exp), "a" * 5000])
    assert huge.exit_code == 2 and "5000 characters" in huge.output and len(huge.output) < 400
    shown = json.loads(cli.invoke(main, ["experiment", "show", str(exp), "--json"]).output)
    assert shown["weights"] == [0.5, 0.5] and shown["status"] == "running"


def test_a_blank_reason_is_refused_as_the_api_refuses_it(cli: CliRunner,
                                                         settings: Settings) -> None:
    """`--reason "   "` was stored as the reason (the API answers 400 for it): the same check."""
    exp = _running(cli, settings)
    for args in (["pause-arm", str(exp), "t", "--reason", "   "],
                 ["pause", str(exp), "--reason", "   "],
                 ["kill", str(exp), "--reason", "\t"]):
        refused = cli.invoke(main, ["experiment", *args])
        assert refused.exit_code == 2, (args, refused.output)
        assert "must say why in at most 500 characters (not blank)" in refused.output, args
    shown = json.loads(cli.invoke(main, ["experiment", "show", str(exp), "--json"]).output)
    assert shown["status"] == "running" and shown["status_reason"] == ""
    assert shown["arms"][1]["paused"] is None


def test_control_characters_in_a_reason_or_a_name_are_refused(cli: CliRunner,
                                                              settings: Settings) -> None:
    """A reason or a name is shown on one line (`experiment list`, the pages): an escape
    sequence in one was stored and reached the operator's terminal as one, a line break split
    the summary. The API takes the same check (serving.experiments.check_reason)."""
    exp = _running(cli, settings)
    for args in (["pause-arm", str(exp), "t", "--reason", "x\x1b[2Jcleared"],
                 ["pause", str(exp), "--reason", "two\nlines"],
                 ["kill", str(exp), "--reason", "bell\x07"]):
        refused = cli.invoke(main, ["experiment", *args])
        assert refused.exit_code == 2, (args, refused.output)
        assert "must not contain control characters" in refused.output, args
        assert "characters)" not in refused.output, refused.output  # no size said: not it
    named = cli.invoke(main, ["experiment", "create", "--name", "a\x1b[31mred", "--scope", "s",
                              "--arm", "c=iris", "--arm", "t=iris"])
    assert named.exit_code == 2 and "'name' must not contain control characters" in \
        named.output, named.output
    shown = json.loads(cli.invoke(main, ["experiment", "list", "--json"]).output)
    assert [(e["status"], e["status_reason"], e["arms"][1]["paused"]) for e in shown] == [
        ("running", "", None)]
