"""`abvoc experiment create --guardrail`: a limit given twice is refused, not the last kept."""

from __future__ import annotations

from click.testing import CliRunner

from app.cli import main
from core.settings import Settings
from core.store.db import Database
from serving.registry import Registry


def test_a_guardrail_given_twice_is_refused_and_nothing_is_created(
        cli: CliRunner, settings: Settings) -> None:
    """`--guardrail error_rate=0.01 --guardrail error_rate=0.5` made an experiment whose
    guardrail paused at 50% errors, with no word about the 1% asked first."""
    with Database(settings.database_url) as db:
        Registry(db).register("iris", "1")
    refused = cli.invoke(main, ["experiment", "create", "--name", "twice", "--arm", "c=iris",
                                "--arm", "t=iris", "--guardrail", "error_rate=0.01",
                                "--guardrail", "error_rate=0.5"])
    assert refused.exit_code == 2, refused.output
    assert refused.output.strip() == ("abvoc: error: --guardrail error_rate is given twice "
                                      "(0.01 and '0.5'): give each limit once")
    assert cli.invoke(main, ["experiment", "list"]).output.strip() == "no experiments"
