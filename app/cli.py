"""The `abvoc` command line: thin click commands over plain functions that tests call directly."""

from __future__ import annotations

import json
import logging
import math
import sys
import time
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import Any

import click

from core.errors import AbvocError
from core.folders import unwritable
from core.ids import MAX_ROW_ID
from core.relabel import queue_problem
from core.settings import Settings, load_settings
from core.store.db import Database
from core.text import text_problem

LOG_FORMAT = "%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str | int) -> None:
    """A service process's log: times in UTC, marked Z, as every time abvoc shows (the host's
    local time without its offset read hours off beside the API's and the pages' times)."""
    formatter = logging.Formatter(LOG_FORMAT, datefmt="%Y-%m-%dT%H:%M:%S")
    formatter.converter = time.gmtime
    handler = logging.StreamHandler()
    handler.setFormatter(formatter)
    logging.basicConfig(level=level, handlers=[handler])


EXPERIMENT_ID = click.IntRange(1, MAX_ROW_ID)
"""Every experiment id argument: the store keeps ids as signed 64-bit integers."""
SEED = click.IntRange(0, MAX_ROW_ID)
"""Every --seed: the generators (torch, numpy) take a non-negative 64-bit seed."""
EPOCHS = click.IntRange(1, 1000)
"""Every --epochs: the defaults are 20-30; a mistyped 10^20 trained on without end."""


class Context:
    """Lazily loaded settings, so `--help` works even when the configuration is broken."""

    def __init__(self, config_file: str | None) -> None:
        self.config_file = config_file
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(config_file=self.config_file)
        return self._settings


pass_ctx = click.make_pass_decorator(Context)


@contextmanager
def open_db(ctx: Context, *, migrated: bool = True, create: bool = False) -> Iterator[Database]:
    """The configured store, checked reachable and (unless `migrated` is False: the `db`
    commands) at the migrations' head, closed when the command is done. Only `create` (`db
    upgrade`) makes a missing SQLite file: elsewhere a mistyped path is an error, not a store."""
    from core.store import schema

    with Database(ctx.settings.database_url, create=create) as db:
        db.check()
        state = schema.status(db) if migrated else schema.CURRENT
        if state == schema.AHEAD:
            click.echo(f"note: {schema.ahead_note(db)}", err=True)
        elif state == schema.BEHIND:
            now = schema.current(db)
            raise AbvocError(f"the store is {'at revision ' + now if now else 'not migrated'}, "
                             f"not at {schema.head(db)}: run `abvoc db upgrade` first")
        yield db


def check_store(ctx: Context) -> None:
    """Fail now, naming the fix, when the store is unreachable or not migrated: before a long
    training whose result it would otherwise refuse at the end."""
    with open_db(ctx):
        pass


@contextmanager
def bundle_code_prints_to_stderr() -> Iterator[None]:
    """While a bundle's own code runs (its modules imported, its stages called), its prints go
    to stderr: stdout carries the command's result alone, so `--json` stays parseable."""
    with redirect_stdout(sys.stderr):
        yield


def progress_to(as_json: bool) -> Callable[[str], None]:
    """Where a command's progress lines go: stdout, or stderr beside `--json` (its stdout is
    the JSON alone; long work still shows it is moving)."""
    return (lambda line: click.echo(line, err=True)) if as_json else click.echo


def emit(data: Any, as_json: bool, human: str | None = None) -> None:
    """Print `data` as JSON for machines, or `human` (default: pretty JSON) for people."""
    if as_json or human is None:
        click.echo(json.dumps(data, indent=2, default=str, sort_keys=True))
    else:
        click.echo(human)


def shown_width(text: str) -> int:
    """Columns `text` takes on a terminal: wide (CJK) characters take two, combining marks
    none."""
    return sum(0 if unicodedata.combining(ch) else
               2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def columns(header: list[str], rows: list[list[str]], right: set[int] = frozenset()) -> str:
    """Rows as a text table, each column as wide as its widest cell on a terminal (names and
    versions of any length or script stay aligned); the columns in `right` are right-aligned
    (figures), the last is free."""
    widths = [max(shown_width(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]

    def line(cells: list[str]) -> str:
        pads = [" " * (w - shown_width(c)) for c, w in zip(cells, widths, strict=False)]
        fitted = [pad + c if i in right else c + pad
                  for i, (c, pad) in enumerate(zip(cells, pads, strict=False))]
        return "  ".join([*fitted, cells[-1]]).rstrip()

    return "\n".join(line(r) for r in [header, *rows])


class Finite(click.FloatRange):
    """A FloatRange that also refuses nan and inf, which pass its comparisons unnoticed."""

    name = "finite float range"

    def __init__(self, min: float | None = None, max: float | None = None,  # noqa: A002
                 said: str | None = None, **kwargs: Any) -> None:
        super().__init__(min, max, **kwargs)
        self.said = said  # how help and errors say the range, where click's digits would not

    def _describe_range(self) -> str:
        # click writes an unbounded side as None ("x<=None"); say what is allowed instead.
        if self.said:
            return self.said
        if self.min is None and self.max is None:
            return "any finite number"
        return super()._describe_range()

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number + 0.0  # -0 is 0 (else printed as "-0%")


class CandidateVersion(click.ParamType):
    """A --version: a blank one was taken as no version at all, and the store then said the
    whole candidate "is not registered"."""

    name = "version"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> str:
        text = str(value)
        if not text.strip():
            self.fail("is empty: name a version (`abvoc candidates list --all` shows them) or "
                      "leave the option out for the latest", param, ctx)
        return text


VERSION = CandidateVersion()


class Folder(click.Path):
    """A folder to write to, never empty: click reads '' as the current folder, where an
    export then wrote its files without a word."""

    def __init__(self) -> None:
        super().__init__(file_okay=False, path_type=Path)

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.strip():
            self.fail("is empty: give a folder (or leave the option out for its default)",
                      param, ctx)
        return super().convert(value, param, ctx)


class QueueName(click.ParamType):
    """A relabeling queue: one of the purposes, or `stage:<name>` (a staged pipeline's)."""

    name = "queue"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> str:
        text = str(value)
        problem = queue_problem(text)  # core.relabel's check, the one the API and feedback use
        if problem is not None:
            self.fail(problem, param, ctx)
        return text


def json_error(exc: Exception) -> str:
    """Why json.loads refused an option's text, in a user's words: past 4,300 digits Python
    advises calling sys.set_int_max_str_digits, which no user of the command line can, and
    nesting past its recursion limit reads as an internal failure."""
    if "integer string conversion" in str(exc):
        return "it holds a number of thousands of digits, which is out of range"
    if isinstance(exc, RecursionError):  # Python's own words: "maximum recursion depth"
        return "it is nested thousands of levels deep, deeper than abvoc reads"
    return str(exc)[:200]


def check_out_folder(path: Any, option: str = "--out") -> None:
    """Check that a command can write under `path` before it does any work, so an unusable
    path fails with one line naming the option instead of a traceback half way."""
    if problem := unwritable(path):
        raise AbvocError(f"{option} {str(path)!r} cannot be written: {problem}") from None


json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")


class AbvocGroup(click.Group):
    """Loads a subcommand's module only when that command is asked for (app.commands), and
    turns an AbvocError anywhere below into a one-line message and a non-zero exit."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        from app.commands import MODULES

        return sorted(MODULES)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        from app.commands import load

        return load(cmd_name)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Refuse arguments that are not valid UTF-8 (Python keeps their bytes as lone
        surrogates), once for every command, before they reach a store or a name."""
        if ctx.parent is None:
            for i, arg in enumerate(args):
                if text_problem(arg) is not None:  # argv holds no NUL: a surrogate it is
                    click.echo(f"abvoc: error: {_argument_name(args, i)} is not valid UTF-8 "
                               "text; pass it in UTF-8", err=True)
                    ctx.exit(2)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AbvocError as exc:
            click.echo(f"abvoc: error: {exc.message}", err=True)
            sys.exit(2)


def _argument_name(args: list[str], i: int) -> str:
    """How an error names argument `i`: its option, or its position."""
    arg = args[i]
    if arg.startswith("--") and "=" in arg:
        return f"the value of {arg.partition('=')[0]}"
    if arg.startswith("-"):
        return f"option {arg.encode('utf-8', 'backslashreplace').decode()!r}"
    if i > 0 and args[i - 1].startswith("-") and "=" not in args[i - 1]:
        return f"the value of {args[i - 1]}"
    return f"argument {i + 1} ({arg.encode('utf-8', 'backslashreplace').decode()!r})"


@click.group(cls=AbvocGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_file", envvar="ABVOC_CONFIG", help="Optional TOML config file.")
@click.pass_context
def main(ctx: click.Context, config_file: str | None) -> None:
    """abvoc: online A/B evaluation and voice-of-customer feedback for ML model candidates."""
    from app.orphans import watch_supervisor

    watch_supervisor()
    ctx.obj = Context(config_file)
