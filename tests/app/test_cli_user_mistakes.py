"""User mistakes on the `abvoc` command line: a one-line error naming what to fix, a non-zero
exit, no traceback, and nothing written (SQLite store in a fresh data folder)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from app.cli import main

BUNDLE = Path(__file__).resolve().parents[2] / "examples" / "bundles" / "iris-onnx"
HUGE = "99999999999999999999999"


@pytest.fixture
def cli(fresh_cli: CliRunner) -> CliRunner:
    return fresh_cli


def refused(result: Result, *words: str) -> None:
    """Exit non-zero with the words in the output and no traceback."""
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    assert "Traceback" not in result.output
    for word in words:
        assert word in result.output, result.output


def test_report_refuses_unfinished_and_unrepresentable_weeks(cli: CliRunner,
                                                             tmp_path: Path) -> None:
    for week in ("2999-W01", "9999-W51"):
        refused(cli.invoke(main, ["report", "--week", week, "--out", str(tmp_path / "r")]),
                f"week {week} ends on", "a report covers a finished week")
    for week in ("0001-W01", "9999-W52"):
        refused(cli.invoke(main, ["report", "--week", week]), "out of range")
    refused(cli.invoke(main, ["report", "--out", "/proc/abvoc-x"]), "--out", "/proc/abvoc-x")
    assert not (tmp_path / "r").exists()


def test_report_to_date_refuses_a_week_that_is_not_the_current_one(cli: CliRunner,
                                                                  tmp_path: Path) -> None:
    out = ["--out", str(tmp_path / "r")]
    refused(cli.invoke(main, ["report", "--to-date", "--week", "2026-W01", *out]),
            "week 2026-W01 is over", "abvoc report --week 2026-W01")
    refused(cli.invoke(main, ["report", "--to-date", "--week", "2999-W01", *out]),
            "week 2999-W01 begins on 2998-12-31 UTC", "of the current one")
    refused(cli.invoke(main, ["report", "--to-date", "--week", "2026-W1", *out]), "2026-W48")
    assert not (tmp_path / "r").exists()


def test_train_names_the_candidates_it_knows(cli: CliRunner, tmp_path: Path) -> None:
    refused(cli.invoke(main, ["train", "ocr-nope"]),
            "unknown candidate(s) 'ocr-nope'; known: 'ocr-large-mixed', ")
    refused(cli.invoke(main, ["train"]), "name a candidate or use --all; known: 'ocr-small-")


def test_due_report_schedule_still_writes_finished_weeks(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from core.errors import AbvocError
    from core.store import Database, schema
    from dashboards.report import due_week, write_report

    now = datetime(2026, 12, 2, 12, tzinfo=UTC)
    with Database(f"sqlite:///{tmp_path / 'a.db'}") as db:
        schema.upgrade(db)
        with pytest.raises(AbvocError, match="a report covers a finished week"):
            write_report(db, tmp_path / "r", "2026-W49", now=now)
    assert due_week(now) == "2026-W48"  # ended on Monday 2026-11-30: allowed


def test_experiment_create_mistakes(cli: CliRunner, tmp_path: Path) -> None:
    base = ["experiment", "create", "--name", "x", "--arm", "a=iris-onnx"]
    refused(cli.invoke(main, [*base, "--guardrail", "p99_latency_ms=abc"]), "--guardrail")
    refused(cli.invoke(main, [*base, "--guardrail", "foo"]), "NAME=LIMIT")
    for steps in ("b:abc", "b:0.1,,0.2", "b:0.1,"):  # an empty step was skipped silently
        refused(cli.invoke(main, [*base, "--arm", "b=iris-onnx", "--canary", steps]), "--canary")
    refused(cli.invoke(main, [*base, "--advance-after-s", "60"]), "--canary")
    for one_or_none in (base, base[:4]):  # the option to repeat, not the API's 'arms'
        refused(cli.invoke(main, one_or_none), "give --arm at least twice", "control=iris")
    spec = tmp_path / "spec.json"
    for content, words in ((b"", "empty"), (b"{nope", "cannot be read as JSON"),
                           (b"\xff\xfe{}", "UTF-8"),
                           (b"[" * 5000 + b"]" * 5000, "nested thousands of levels deep")):
        spec.write_bytes(content)
        refused(cli.invoke(main, ["experiment", "create", "--spec", str(spec)]), "--spec", *[words])
    refused(cli.invoke(main, ["experiment", "create", "--spec", "-"], input=""), "empty")
    spec.write_text("{}")
    refused(cli.invoke(main, ["experiment", "create", "--spec", str(spec), "--name", "n",
                              "--arm", "a=b"]), "leave out --name, --arm")
    for verb in ("start", "resume", "stop", "advance"):
        refused(cli.invoke(main, ["experiment", verb, "1", "--reason", "r"]), "--reason")
    refused(cli.invoke(main, ["experiment", "list", "--status", "bogus"]), "bogus")
    assert "no experiments" in cli.invoke(main, ["experiment", "list"]).output


def test_guardrail_limits_are_read_as_the_json_spec_reads_them(cli: CliRunner) -> None:
    """A whole number stays whole: min_samples once became 100.0 and was always refused."""
    assert cli.invoke(main, ["candidates", "register", str(BUNDLE)]).exit_code == 0
    base = ["experiment", "create", "--arm", "c=iris-onnx:0.5", "--arm", "t=iris-onnx:0.5"]
    refused(cli.invoke(main, [*base, "--name", "f", "--guardrail", "min_samples=100.5"]),
            "guardrails.min_samples must be a whole number")
    created = cli.invoke(main, [*base, "--name", "g", "--guardrail", "min_samples=100",
                                "--guardrail", "p99_latency_ms=250.5", "--guardrail",
                                "error_rate=1", "--json"])
    assert created.exit_code == 0, created.output
    rails = json.loads(created.output)["guardrails"]
    assert (rails["min_samples"], rails["p99_latency_ms"], rails["error_rate"]) == (100, 250.5, 1)
    # The primary metric, as the API takes it: one the arms' answers (labels here) can give.
    refused(cli.invoke(main, [*base, "--name", "h", "--primary-metric", "absolute_error"]),
            "'primary_metric' 'absolute_error' has nothing to measure in answers of type "
            "'label'")
    chosen = cli.invoke(main, [*base, "--name", "i", "--primary-metric", "exact_match", "--json"])
    assert chosen.exit_code == 0 and json.loads(chosen.output)["primary_metric"] == "exact_match"
    assert isinstance(rails["min_samples"], int)


@pytest.mark.parametrize("args", [
    ["experiment", "show", HUGE], ["experiment", "start", HUGE], ["experiment", "results", HUGE],
    ["experiment", "divergence", HUGE], ["metrics", "list", HUGE],
    ["relabel", "rules", "--experiment", HUGE], ["db", "backfill-unit-sums", "--experiment", HUGE]])
def test_experiment_ids_beyond_64_bits_are_refused(cli: CliRunner, args: list[str]) -> None:
    refused(cli.invoke(main, args), "9223372036854775807")


@pytest.mark.parametrize("args", [
    ["train", "ocr-small-printed", "--n-train", "10", "--epochs", "1", "--seed", "-1"],
    ["offline-test", "iris-onnx", "--seed", "-1"],
    ["pages", "offline-test", "pages-xycut", "--seed", str(2**63)],
    ["workloads", "gameplay", "play", ".", "--seed", "-1"]])
def test_seeds_are_checked_before_any_work(cli: CliRunner, args: list[str]) -> None:
    refused(cli.invoke(main, args), "--seed", "0<=x<=9223372036854775807")


def test_offline_test_bundle_advice_and_seed_with_dataset(cli: CliRunner) -> None:
    assert cli.invoke(main, ["candidates", "register", str(BUNDLE)]).exit_code == 0
    refused(cli.invoke(main, ["offline-test", "iris-onnx"]), "bundle candidate", "--dataset")
    refused(cli.invoke(main, ["offline-test", "iris-onnx", "--dataset",
                              str(BUNDLE / "offline.jsonl"), "--seed", "3"]), "--seed")


@pytest.mark.parametrize(("env", "toml", "words"), [
    ({"ABVOC_LOG_LEVEL": "bogus"}, None, "ABVOC_LOG_LEVEL"),
    ({"ABVOC_BUS_PARTITIONS": "99999999999999999999"}, None, "ABVOC_BUS_PARTITIONS"),
    ({"ABVOC_BUS_URL": "kafka://h\udcff:1"}, None, "ABVOC_BUS_URL"),  # `worker`: a traceback
    ({"ABVOC_SECRET_KEY": "k\udcff" + "k" * 40}, None, "ABVOC_SECRET_KEY"),  # ditto, anywhere
    ({}, b"data_dir = 5\n", "ABVOC_DATA_DIR"),
    ({}, b"model_store = 7\n", "ABVOC_MODEL_STORE"),
    ({}, b"bus_partitions = [1]\n", "ABVOC_BUS_PARTITIONS"),
    ({}, b"bus_partitions = 2.9\n", "ABVOC_BUS_PARTITIONS"),
    ({}, b"retention_days = true\n", "ABVOC_RETENTION_DAYS"),
    ({}, b"environment = 3\n", "ABVOC_ENV"),
    ({}, b'topic_prefix = ""\n', "ABVOC_TOPIC_PREFIX"),
    ({}, b'log_level = "\xff"\n', "ABVOC_CONFIG")])
def test_bad_settings_are_refused_at_load(cli: CliRunner, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
                                          toml: bytes | None, words: str) -> None:
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    args = ["config"]
    if toml is not None:  # the file alone: the environment would win over it
        monkeypatch.delenv("ABVOC_DATA_DIR")
        monkeypatch.chdir(tmp_path)
        (tmp_path / "c.toml").write_bytes(toml)
        args = ["--config", str(tmp_path / "c.toml"), "config"]
    refused(cli.invoke(main, args), "abvoc: error:", words)


def test_unusable_folders_and_stores_are_named(cli: CliRunner, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a database\n")
    monkeypatch.setenv("ABVOC_DATA_DIR", str(a_file))
    refused(cli.invoke(main, ["db", "current"]), "ABVOC_DATA_DIR", "not a folder")
    monkeypatch.setenv("ABVOC_SECRET_KEY", "k")
    refused(cli.invoke(main, ["candidates", "list"]), "ABVOC_DATA_DIR", "not a folder")
    monkeypatch.setenv("ABVOC_DATA_DIR", "/proc/abvoc")
    refused(cli.invoke(main, ["db", "upgrade"]), "ABVOC_DATA_DIR", "/proc/abvoc")
    monkeypatch.setenv("ABVOC_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ABVOC_MODEL_STORE", str(a_file))
    refused(cli.invoke(main, ["candidates", "register", str(BUNDLE)]), "ABVOC_MODEL_STORE")
    monkeypatch.delenv("ABVOC_MODEL_STORE")
    monkeypatch.setenv("ABVOC_DATABASE_URL", f"sqlite:///{a_file}")
    refused(cli.invoke(main, ["db", "current"]), "ABVOC_DATABASE_URL", "not a database")


def test_folders_that_can_never_be_made_or_written_are_named_before_any_work(
        cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder under a file failed as "the secret key file cannot be read" (data folder) or a
    traceback (model store); an unwritable store failed as a traceback, `train` only after
    training. /proc/self is a folder no one can write in."""
    (a_file := tmp_path / "a-file").write_text("x\n")
    monkeypatch.setenv("ABVOC_DATA_DIR", str(a_file / "data"))
    refused(cli.invoke(main, ["config"]), "ABVOC_DATA_DIR", f"{a_file} is a file")
    monkeypatch.setenv("ABVOC_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ABVOC_MODEL_STORE", str(a_file / "models"))
    refused(cli.invoke(main, ["candidates", "list"]), "ABVOC_MODEL_STORE", f"{a_file} is a file")
    monkeypatch.setenv("ABVOC_MODEL_STORE", "/proc/self")
    refused(cli.invoke(main, ["candidates", "register", str(BUNDLE)]),
            "the model store (ABVOC_MODEL_STORE", "cannot be written: /proc/self/bundles:")
    started = time.monotonic()
    refused(cli.invoke(main, ["train", "ocr-small-printed", "--n-train", "200", "--epochs", "3"]),
            "the model store (ABVOC_MODEL_STORE", "cannot be written: /proc/self")
    assert time.monotonic() - started < 5  # refused before training, not after
    refused(cli.invoke(main, ["workloads", "gameplay", "build", "--out", "/proc/self/x"]),
            "--out '/proc/self/x' cannot be written")
    monkeypatch.delenv("ABVOC_MODEL_STORE")
    assert "no candidates" in cli.invoke(main, ["candidates", "list"]).output


def test_a_guardrail_beyond_the_stored_range_says_the_range(cli: CliRunner) -> None:
    result = cli.invoke(main, ["metrics", "define", "1", "--name", "m", "--kind", "mean",
                               "--direction", "higher", "--guardrail", "1e16"])
    refused(result, "-2^53<=x<=2^53")
    assert "-2^53<=x<=2^53" in cli.invoke(main, ["metrics", "define", "--help"]).output


def test_read_only_commands_make_no_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ABVOC_DATABASE_URL", raising=False)
    monkeypatch.setenv("ABVOC_DATA_DIR", str(tmp_path / "new" / "data"))
    runner = CliRunner()
    assert runner.invoke(main, ["config"]).exit_code == 0
    refused(runner.invoke(main, ["db", "current"]), "no store at", "abvoc db upgrade",
            "the current folder", "the service's store")
    refused(runner.invoke(main, ["keys", "list"]), "no store at")
    assert not (tmp_path / "new").exists()
    assert runner.invoke(main, ["db", "upgrade"]).exit_code == 0
    assert (tmp_path / "new" / "data" / "abvoc.db").is_file()


def test_out_folders_that_cannot_be_written_are_named(cli: CliRunner, tmp_path: Path) -> None:
    refused(cli.invoke(main, ["relabel", "export", "ds", "--out", "/proc/abvoc-x"]), "--out")
    (tmp_path / "pages").mkdir()
    refused(cli.invoke(main, ["dataset", "split-pages", str(tmp_path / "pages"), "--out",
                              "/proc/abvoc-zz"]), "--out", "/proc/abvoc-zz")


def test_arguments_that_are_not_utf8_are_refused_once(cli: CliRunner) -> None:
    refused(cli.invoke(main, ["keys", "create", "--scopes", "predict", "--name", "bad\udcffname"]),
            "--name", "UTF-8")
    refused(cli.invoke(main, ["experiment", "create", "--name", "x",
                              "--arm", "a\udcff=iris-onnx"]), "--arm", "UTF-8")
    refused(cli.invoke(main, ["experiment", "create", "--name=x\udcff"]), "--name", "UTF-8")
    assert "no experiments" in cli.invoke(main, ["experiment", "list"]).output
    assert "no keys" in cli.invoke(main, ["keys", "list"]).output


@pytest.mark.parametrize("url", ["http://127.0.0.1:1", "not a url", "ftp://x"])
def test_simulate_against_no_service_is_one_line(cli: CliRunner, url: str) -> None:
    refused(cli.invoke(main, ["simulate", "gameplay", "--url", url, "--key", "k",
                              "--wait", "0"]), url)
    for run in ("", "a b", "x" * 41, "p/1"):  # a name that fits in no player id
        refused(cli.invoke(main, ["simulate", "gameplay", "--url", url, "--key", "k",
                                  "--run", run]), "--run")


@pytest.mark.parametrize(("url", "shown"), [
    ("http://bob:hunter2@127.0.0.1:1", "http://***@127.0.0.1:1"),
    ("ftp://bob:hunter2@127.0.0.1:1", "ftp://***@127.0.0.1:1"),
    ("http://127.0.0.1:1/?token=hunter2", "http://127.0.0.1:1/?token=***"),
    ("http://bob:hunter2@[::1", "http://***@[::1"),
])
def test_simulate_never_prints_the_urls_credentials(cli: CliRunner, url: str,
                                                    shown: str) -> None:
    """Every error printed --url whole, password and token included; a malformed IPv6 host
    was a traceback."""
    result = cli.invoke(main, ["simulate", "gameplay", "--url", url, "--key", "k", "--wait", "0"])
    refused(result, shown)
    assert "hunter2" not in result.output


@pytest.mark.parametrize("step", ["upgrade", "downgrade"])
@pytest.mark.parametrize("revision", ["", "  "])
def test_an_empty_revision_is_one_line(cli: CliRunner, step: str, revision: str) -> None:
    """Alembic asserted on it: a traceback, exit status 1."""
    result = cli.invoke(main, ["db", step, revision])
    refused(result, "give a revision: 'head', a revision id")
    assert result.exit_code == 2


def test_train_all_with_names_is_refused_before_any_training(cli: CliRunner) -> None:
    """`train --all nosuch` ignored the name and trained every candidate (minutes of CPU)."""
    result = cli.invoke(main, ["train", "--all", "nosuch"])
    refused(result, "give candidate names or --all, not both", "nosuch")
    assert result.exit_code == 2


def test_capacity_names_bundles_and_checks_options_first(cli: CliRunner, tmp_path: Path) -> None:
    assert cli.invoke(main, ["candidates", "register", str(BUNDLE)]).exit_code == 0
    result = cli.invoke(main, ["capacity", "--gpu-mem", "10GB"])
    refused(result, "skipped iris-onnx", "--profiles")
    assert "'iris-onnx'" in result.output
    for args, words in ((["--gpu-mem", "0"], "positive"), (["--reserve", "20GB"], "reserve"),
                        (["--p99-ms", "-5"], "--p99-ms"), (["--p99-ms", "nan"], "--p99-ms")):
        got = cli.invoke(main, ["capacity", "--gpu-mem", "10GB", *args] if args[0] != "--gpu-mem"
                         else ["capacity", *args])
        refused(got, words)
        assert "measuring" not in got.output and "skipped" not in got.output
    profiles = tmp_path / "p.json"
    profiles.write_bytes(b"\xff[]")
    refused(cli.invoke(main, ["capacity", "--gpu-mem", "10GB", "--profiles", str(profiles)]),
            "cannot be read")
    profiles.write_text(json.dumps([{"name": "m", "model_size_bytes": 10,
                                     "latency_by_batch": {"0": 1}}]))
    refused(cli.invoke(main, ["capacity", "--gpu-mem", "10GB", "--profiles", str(profiles)]),
            "batch size 0 must be a whole number of at least 1")


def test_revoke_takes_a_whole_key_and_never_echoes_it(cli: CliRunner) -> None:
    made = json.loads(cli.invoke(main, ["keys", "create", "--scopes", "predict",
                                        "--json"]).output)
    wrong = f"abv_{made['prefix']}_notthesecretatall"
    # The prefix is listed by `keys list`: the message says the secret is what differs.
    refused(cli.invoke(main, ["keys", "revoke", wrong]), made["prefix"], "its secret differs",
            f"give the prefix '{made['prefix']}' alone")
    assert "notthesecret" not in cli.invoke(main, ["keys", "revoke", wrong]).output
    refused(cli.invoke(main, ["keys", "revoke", " "]), "give the key's prefix")
    listed = json.loads(cli.invoke(main, ["keys", "list", "--json"]).output)
    assert listed[0]["created_at"].endswith("+00:00"), listed  # a time with its offset
    first = cli.invoke(main, ["keys", "revoke", made["key"]])
    assert first.exit_code == 0 and first.output == f"revoked {made['prefix']}\n"
    assert made["key"] not in first.output
    again = cli.invoke(main, ["keys", "revoke", made["prefix"]])
    assert again.exit_code == 0 and "already revoked" in again.output


@pytest.mark.parametrize(("args", "words"), [
    (["db", "prune", "--retention-days", "nan"], "--retention-days"),
    (["db", "prune", "--retention-days", "inf"], "--retention-days"),
    (["db", "prune", "--retention-days", "1e10"], "--retention-days"),
    (["up", "--no-train", "--prune-every", "nan"], "--prune-every"),
    (["up", "--no-train", "--report-every", "inf"], "--report-every")])
def test_periods_are_finite_and_bounded(cli: CliRunner, args: list[str], words: str) -> None:
    import socket

    with socket.socket() as taken:  # were the option let through, `up` would stop here
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = ["--port", str(taken.getsockname()[1])] if args[0] == "up" else []
        refused(cli.invoke(main, [*args, *port]), words)


def test_deeply_nested_rules_are_refused_in_a_user_s_words(cli: CliRunner) -> None:
    """Python's "maximum recursion depth exceeded" read as abvoc's own failure."""
    result = cli.invoke(main, ["relabel", "rules", "--set", "[" * 5000 + "]" * 5000])
    refused(result, "--set cannot be read as JSON", "nested thousands of levels deep")
    assert "recursion" not in result.output


@pytest.mark.parametrize("args", [
    ["candidates", "show", "iris-onnx"], ["candidates", "retire", "iris-onnx"],
    ["candidates", "offline-results", "iris-onnx", str(BUNDLE / "candidate.toml")],
    ["offline-test", "iris-onnx"], ["dataset", "split-pages", ".", "--out", "x"]])
def test_an_empty_version_is_refused_as_such(cli: CliRunner, args: list[str]) -> None:
    """It read as no version, and the store said the whole candidate "is not registered"."""
    assert cli.invoke(main, ["candidates", "register", str(BUNDLE)]).exit_code == 0
    for blank in ("", "  "):
        refused(cli.invoke(main, [*args, "--version", blank]), "--version", "is empty")
    assert "iris-onnx" in cli.invoke(main, ["candidates", "list"]).output  # nothing retired


def test_a_parked_event_id_beyond_64_bits_is_refused(cli: CliRunner) -> None:
    """`events replay --id 10**30` reached SQLite and failed as an OverflowError traceback."""
    refused(cli.invoke(main, ["events", "replay", "--id", str(10**30)]), "--id",
            "9223372036854775807")


def test_a_key_name_that_the_store_cannot_hold_is_refused(cli: CliRunner) -> None:
    """The column holds 100 characters: SQLite kept a longer name (PostgreSQL would refuse it
    with a traceback), and a line break in it split `keys list`'s table."""
    for name in ("k" * 101, "a\nb"):
        refused(cli.invoke(main, ["keys", "create", "--scopes", "predict", "--name", name]),
                "--name")
    assert "no keys" in cli.invoke(main, ["keys", "list"]).output
    assert cli.invoke(main, ["keys", "create", "--scopes", "predict", "--name", "k" * 100]
                      ).exit_code == 0


@pytest.mark.parametrize("option", ["--week", "--out"])
def test_an_empty_report_week_or_folder_is_refused(cli: CliRunner, option: str) -> None:
    """An empty --week or --out read as none: a report of another week, or in another folder."""
    result = cli.invoke(main, ["report", option, "", "--json"])
    refused(result, option, "is empty")
    assert "html" not in result.output


def test_a_number_of_thousands_of_digits_is_out_of_range(cli: CliRunner, tmp_path: Path) -> None:
    """Python's own advice came through: "use sys.set_int_max_str_digits() to increase"."""
    (spec := tmp_path / "spec.json").write_text('{"expected_sample_per_arm": ' + "9" * 5000 + "}")
    for args in (["experiment", "create", "--spec", str(spec)],
                 ["relabel", "rules", "--set", '{"audit_rate": ' + "9" * 5000 + "}"]):
        result = cli.invoke(main, args)
        refused(result, args[2], "out of range")
        assert "sys.set_int_max_str_digits" not in result.output
