"""The `abvoc` command line: thin click commands over plain functions that tests call directly."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from core.errors import AbvocError
from core.settings import Settings, load_settings
from core.store.db import Database


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
def open_db(ctx: Context, *, migrated: bool = True) -> Iterator[Database]:
    """The configured store, checked reachable and (unless `migrated` is False: the `db`
    commands) at the migrations' head, closed when the command is done."""
    from core.store import schema

    with Database(ctx.settings.database_url) as db:
        db.check()
        if migrated and not schema.is_current(db):
            now = schema.current(db)
            raise AbvocError(f"the store is {'at revision ' + now if now else 'not migrated'}, "
                             f"not at {schema.head(db)}: run `abvoc db upgrade` first")
        yield db


def emit(data: Any, as_json: bool, human: str | None = None) -> None:
    """Print `data` as JSON for machines, or `human` (default: pretty JSON) for people."""
    if as_json or human is None:
        click.echo(json.dumps(data, indent=2, default=str, sort_keys=True))
    else:
        click.echo(human)


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

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AbvocError as exc:
            click.echo(f"abvoc: error: {exc.message}", err=True)
            sys.exit(2)


@click.group(cls=AbvocGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_file", envvar="ABVOC_CONFIG", help="Optional TOML config file.")
@click.pass_context
def main(ctx: click.Context, config_file: str | None) -> None:
    """abvoc: online A/B evaluation and voice-of-customer feedback for ML model candidates."""
    ctx.obj = Context(config_file)
