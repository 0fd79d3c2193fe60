"""The `abvoc` command line: every subcommand has --help; config and db work end to end."""

from __future__ import annotations

import importlib
import json

import click
import pytest
from click.testing import CliRunner

from app.cli import main
from core.settings import ENV_KEYS
from tests.support.heavy_imports import heavy_modules_after
from tests.support.ports import free_port


def _all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        out.append((*prefix, name))
        if isinstance(command, click.Group):
            out += _all_commands(command, (*prefix, name))
    return out


@pytest.mark.parametrize("path", _all_commands(main), ids=" ".join)
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_every_command_is_listed_under_its_module() -> None:
    """The lazy table (app.commands.MODULES) names each module's commands, no more, no fewer."""
    from app.commands import MODULES

    defined = {c.name: module for module in set(MODULES.values())
               for c in importlib.import_module(f"app.commands.{module}").COMMANDS}
    assert defined == MODULES


def test_the_worker_and_relay_start_without_torch() -> None:
    """`abvoc up` restarts them when they fail: they load only their own command's module."""
    assert heavy_modules_after(["worker", "--help"], ["relay", "--help"]) == []


def test_config_masks_secrets(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # noqa: ANN001
    monkeypatch.setenv("ABVOC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ABVOC_DATABASE_URL", "postgresql://u:topsecret@db.internal/abvoc")
    monkeypatch.setenv("ABVOC_SECRET_KEY", "alsosecret")
    result = CliRunner().invoke(main, ["config", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["database_url"] == "postgresql+psycopg://u:***@db.internal/abvoc"
    assert data["secret_key"] == "****"
    assert "topsecret" not in result.output and "alsosecret" not in result.output


def test_config_prints_the_keys_a_config_file_takes(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path) -> None:  # noqa: ANN001
    """It printed `bus = ...` and `environment = ...` (the settings' older aliases) where the
    README and the config-file errors name `bus_url` and `env` (the exploratory pass's F15)."""
    for var in ("ABVOC_CONFIG", "ABVOC_DATABASE_URL", "ABVOC_ENV"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ABVOC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ABVOC_BUS_URL", "kafka://127.0.0.1:9092")
    monkeypatch.setenv("ABVOC_TOPIC_PREFIX", "pasted")
    human = CliRunner().invoke(main, ["config"])
    assert human.exit_code == 0, human.output
    printed = dict(line.split(" = ", 1) for line in human.output.splitlines())
    assert printed["bus_url"] == "kafka://127.0.0.1:9092" and printed["env"] == "development"
    assert set(printed) == {v.removeprefix("ABVOC_").lower() for v in ENV_KEYS}
    machine = json.loads(CliRunner().invoke(main, ["config", "--json"]).output)
    assert set(machine) == set(printed)
    # Pasted into a config file, its lines are taken as they are (an old key would be too,
    # but under a name the README does not give).
    monkeypatch.delenv("ABVOC_BUS_URL")
    monkeypatch.delenv("ABVOC_TOPIC_PREFIX")
    pasted = tmp_path / "abvoc.toml"
    pasted.write_text("".join(f'{k} = "{printed[k]}"\n' for k in ("bus_url", "env",
                                                                   "topic_prefix")))
    again = CliRunner().invoke(main, ["--config", str(pasted), "config"])
    assert again.exit_code == 0, again.output
    assert again.output == human.output


def test_malformed_url_fails_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABVOC_BUS_URL", "kafka:/oops")
    result = CliRunner().invoke(main, ["config"])
    assert result.exit_code != 0
    assert "ABVOC_BUS_URL" in result.output


def test_unreachable_database_fails_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
    postgres,  # noqa: ANN001
) -> None:
    monkeypatch.setenv("ABVOC_DATABASE_URL", postgres.url("no_such_database"))
    # `up` checks the store before it trains (it ended in a traceback there).
    for args in (["db", "upgrade"], ["up", "--port", str(free_port())]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2, result.output
        assert "ABVOC_DATABASE_URL" in result.output and "unreachable" in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize("command", ["worker", "relay", "serve", "up"])
def test_production_without_a_secret_key_refuses_to_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path, command: str  # noqa: ANN001
) -> None:
    monkeypatch.setenv("ABVOC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ABVOC_ENV", "production")
    monkeypatch.delenv("ABVOC_SECRET_KEY", raising=False)
    args = [command, "--no-train"] if command == "up" else [command]
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0
    assert "ABVOC_ENV=production needs ABVOC_SECRET_KEY" in result.output
    assert not (tmp_path / "secret_key").exists()


def test_malformed_database_url_is_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABVOC_DATABASE_URL", "postgresql://u:hunter2@db:notaport/abvoc")
    result = CliRunner().invoke(main, ["config"])
    assert result.exit_code != 0
    assert "ABVOC_DATABASE_URL" in result.output and "hunter2" not in result.output


@pytest.mark.parametrize(("variable", "url", "words"), [
    ("ABVOC_BUS_URL", "kafka://bob:s3cret@127.0.0.1:9092", "carries credentials"),
    ("ABVOC_DATABASE_URL", "postgresql://bob:hun@s3cret@127.0.0.1:1/db", "percent-encode"),
])
def test_urls_with_credentials_abvoc_cannot_use_are_refused_masked(
        monkeypatch: pytest.MonkeyPatch, variable: str, url: str, words: str) -> None:
    monkeypatch.setenv(variable, url)
    result = CliRunner().invoke(main, ["config"])
    assert result.exit_code != 0 and variable in result.output and words in result.output
    assert "s3cret" not in result.output and "bob:***@" in result.output


def test_commands_on_a_store_not_migrated_say_so(empty_database_url: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABVOC_DATABASE_URL", empty_database_url)
    runner = CliRunner()
    for args in (["keys", "list"], ["experiment", "list"], ["relabel", "queues"],
                 ["db", "prune"]):
        result = runner.invoke(main, args)
        assert result.exit_code == 2, (args, result.output)
        assert "not migrated" in result.output and "abvoc db upgrade" in result.output
        assert "Traceback" not in result.output
    bad = runner.invoke(main, ["db", "upgrade", "nonsense"])
    assert bad.exit_code == 2 and "nonsense" in bad.output, bad.output


def test_unreachable_kafka_fails_at_start_up(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # noqa: ANN001
    monkeypatch.setenv("ABVOC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ABVOC_BUS_URL", f"kafka://127.0.0.1:{free_port()}")
    result = CliRunner().invoke(main, ["worker"])
    assert result.exit_code != 0
    assert "ABVOC_BUS_URL" in result.output and "unreachable" in result.output


def test_db_upgrade_current_downgrade(empty_database_url: str,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABVOC_DATABASE_URL", empty_database_url)
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"]).exit_code == 0
    current = json.loads(runner.invoke(main, ["db", "current", "--json"]).output)
    assert current["current"] == current["head"] is not None
    assert "base" in runner.invoke(main, ["db", "downgrade", "base"]).output
    current = json.loads(runner.invoke(main, ["db", "current", "--json"]).output)
    assert current["current"] is None



def test_db_steps_are_given_as_relative_revisions(empty_database_url: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """`abvoc db downgrade -2` (and `-1`, the default its help and messages name) was refused
    by click as an unknown option: a step back of more than one could not be given at all."""
    monkeypatch.setenv("ABVOC_DATABASE_URL", empty_database_url)
    runner = CliRunner()
    nothing = runner.invoke(main, ["db", "upgrade", "base"])  # it printed "at revision None"
    assert nothing.exit_code == 0 and nothing.output == "database at revision base\n"
    assert runner.invoke(main, ["db", "upgrade", "0030"]).exit_code == 0
    for step, revision in ((["downgrade", "-1"], "0029"), (["downgrade", "-2"], "0027"),
                           (["upgrade", "+3"], "0030")):
        result = runner.invoke(main, ["db", *step])
        assert result.exit_code == 0 and f"at revision {revision}" in result.output, \
            result.output
    mistyped = runner.invoke(main, ["db", "downgrade", "--bogus"])
    assert mistyped.exit_code == 2 and "'--bogus'" in mistyped.output

def test_keys_and_experiment_commands(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.store import schema
    from core.store.db import Database
    from serving.registry import Registry

    monkeypatch.setenv("ABVOC_DATABASE_URL", database_url)
    with Database(database_url) as db:
        schema.upgrade(db)
        for name in ("ocr-small-printed", "ocr-small-mixed"):
            Registry(db).register(name, "1")
    runner = CliRunner()
    key = json.loads(runner.invoke(main, ["keys", "create", "--scopes", "predict,correct",
                                          "--json"]).output)
    assert key["scopes"] == ["correct", "predict"] and key["key"].startswith("abv_")
    listed = runner.invoke(main, ["keys", "list", "--json"]).output
    assert key["prefix"] in listed and key["key"] not in listed
    named = runner.invoke(main, ["keys", "create", "--scopes", "admin", "--name",
                                 "release bot for the nightly canary", "--json"]).output
    header, *rows = runner.invoke(main, ["keys", "list"]).output.splitlines()
    assert header.split() == ["prefix", "name", "scopes"] and len(rows) == 2
    assert {row.index("correct" if key["prefix"] in row else "admin") for row in rows} == \
        {header.index("scopes")}, "the scopes column starts in one place"
    assert key["key"] not in "".join(rows) and json.loads(named)["key"] not in "".join(rows)
    bad = runner.invoke(main, ["keys", "create", "--scopes", "root"])
    assert bad.exit_code != 0 and "scopes" in bad.output

    created = runner.invoke(main, [
        "experiment", "create", "--name", "cli", "--arm", "control=ocr-small-printed:0.5",
        "--arm", "treat=ocr-small-mixed:0.5", "--canary", "treat:0.1,0.5",
        "--expected-sample", "20000", "--json"])
    assert created.exit_code == 0, created.output
    exp = json.loads(created.output)
    assert exp["weights"] == [0.9, 0.1] and exp["status"] == "draft"
    assert exp["expected_sample_per_arm"] == 20000
    assert "running" in runner.invoke(main, ["experiment", "start", str(exp["id"])]).output
    advanced = json.loads(runner.invoke(main, ["experiment", "advance", str(exp["id"]),
                                               "--json"]).output)
    assert advanced["weights"] == [0.5, 0.5]
    shown = runner.invoke(main, ["experiment", "list"]).output
    assert "#1 cli [running]" in shown and "treat=ocr-small-mixed v1 50.0%" in shown
    killed = json.loads(runner.invoke(main, ["experiment", "kill", str(exp["id"]), "--reason",
                                             "bad", "--json"]).output)
    assert killed["status"] == "killed" and killed["status_reason"] == "bad"
    missing = runner.invoke(main, ["experiment", "show", "99"])
    assert missing.exit_code != 0 and "does not exist" in missing.output


def test_experiment_summaries_show_the_pinned_versions(cli: CliRunner, settings) -> None:  # noqa: ANN001
    """Two arms of one candidate, v1 against v5, read alike (`iris 50.0%`) in everything but
    --json (the exploratory pass's loop finding 11)."""
    from core.store.db import Database
    from serving.registry import Registry

    with Database(settings.database_url) as db:
        for version in ("1", "2", "5"):
            Registry(db).register("iris", version)
    spec = {"name": "v1-v5", "scope": "flowers", "shadows": [{"candidate": "iris",
                                                               "version": "2"}],
            "arms": [{"name": "control", "candidate": "iris", "version": "1", "weight": 0.5,
                      "control": True},
                     {"name": "v5", "candidate": "iris", "version": "5", "weight": 0.5}]}
    pinned = "control=iris v1 50.0% (control), v5=iris v5 50.0% shadows=iris v2"
    created = cli.invoke(main, ["experiment", "create", "--spec", "-"], input=json.dumps(spec))
    assert created.exit_code == 0 and pinned in created.output, created.output
    for args in (["start", "1"], ["list"], ["show", "1"]):
        printed = cli.invoke(main, ["experiment", *args])
        assert printed.exit_code == 0 and pinned in printed.output, (args, printed.output)
    # Unpinned at creation, an arm runs the newest active version, and says which.
    created = cli.invoke(main, ["experiment", "create", "--name", "newest", "--scope", "other",
                                "--arm", "c=iris:0.5", "--arm", "t=iris:0.5"])
    assert "c=iris v5 50.0% (control), t=iris v5 50.0%" in created.output, created.output


def test_up_refuses_a_port_in_use(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # noqa: ANN001
    import socket

    monkeypatch.setenv("ABVOC_DATA_DIR", str(tmp_path))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["up", "--no-train", "--port", str(port)])
    assert result.exit_code != 0
    assert f"cannot listen on 127.0.0.1:{port}" in result.output
    # The fresh data folder got its key all the same, owner-only.
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_serve_refuses_a_port_in_use_or_out_of_range(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path) -> None:  # noqa: ANN001
    import socket

    monkeypatch.setenv("ABVOC_DATA_DIR", str(tmp_path))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = CliRunner().invoke(main, ["serve", "--port", str(port)])
    assert busy.exit_code != 0 and f"cannot listen on 127.0.0.1:{port}" in busy.output
    for command in ("serve", "up"):
        wrong = CliRunner().invoke(main, [command, "--port", "70000"])
        assert wrong.exit_code == 2 and "70000" in wrong.output, wrong.output
    # The HTTP server takes IP addresses only: a name made it raise (and `up` restart its API
    # child forever).
    for command in ("serve", "up", "dashboard"):
        for name in ("999.1.1.1", "localhost", ""):
            host = CliRunner().invoke(main, [command, "--host", name, "--port", str(port)])
            assert host.exit_code != 0 and "--host must be an IP address" in host.output, \
                (command, name, host.output)


def test_the_dashboard_alone_serves_no_store_it_would_make(monkeypatch: pytest.MonkeyPatch,
                                                           tmp_path) -> None:  # noqa: ANN001
    """A mistyped data folder got a new empty store and secret key: a dashboard none of the
    operator's keys could log in to."""
    monkeypatch.setenv("ABVOC_DATA_DIR", str(tmp_path / "typo"))
    result = CliRunner().invoke(main, ["dashboard", "--port", str(free_port())])
    assert result.exit_code != 0 and "no store at" in result.output, result.output
    assert not (tmp_path / "typo" / "abvoc.db").exists()
    assert not (tmp_path / "typo" / "secret_key").exists()


def test_a_sqlite_url_into_a_missing_folder_is_refused(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path) -> None:  # noqa: ANN001
    """A mistyped URL made its folders and an empty store of its own, where the worker waited
    for events that went to the real one. Folders are made only under the data folder."""
    monkeypatch.setenv("ABVOC_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ABVOC_DATABASE_URL", f"sqlite:///{tmp_path / 'dtaa' / 'x' / 'abvoc.db'}")
    # `up` refuses it before it trains (it made the folders and trained into a new store).
    for args in (["worker"], ["up", "--port", str(free_port())]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2, result.output
        assert "a folder that does not exist: check the URL for a typo" in result.output
        assert not (tmp_path / "dtaa").exists()
    from core.settings import load_settings
    from core.startup import connect

    inside = tmp_path / "data" / "db" / "a.db"  # under the data folder: made as before
    connect(load_settings(env={"ABVOC_DATA_DIR": str(tmp_path / "data"),
                               "ABVOC_DATABASE_URL": f"sqlite:///{inside}"})).close()
    assert inside.is_file()


def test_an_empty_folder_argument_is_refused_not_the_current_folder(
        monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # noqa: ANN001
    """`relabel export NAME --out ""` and `relabel ls-export ""` wrote into the current folder."""
    monkeypatch.setenv("ABVOC_DATA_DIR", str(tmp_path))
    for args in (["relabel", "export", "ds", "--out", ""], ["relabel", "ls-export", " "],
                 ["workloads", "gameplay", "build", "--out", ""]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2 and "is empty: give a folder" in result.output, args
