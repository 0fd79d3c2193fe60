"""The command line on a store whose model store holds a trained float base (the
`derived_cli` fixture of this folder's conftest)."""

from __future__ import annotations

from dataclasses import dataclass

from click.testing import CliRunner, Result


@dataclass
class DerivedCli:
    """`abvoc` run on an empty SQLite store whose model store holds the trained float base
    (ocr-small-mixed), which the derived candidates (int8, one graph) are made from."""

    url: str
    env: dict[str, str]

    def __call__(self, *args: str) -> Result:
        from app.cli import main

        return CliRunner().invoke(main, list(args), env=self.env)
