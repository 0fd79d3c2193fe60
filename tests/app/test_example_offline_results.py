"""The README's `abvoc candidates offline-results iris-onnx examples/iris-offline-results.json`
works as written: the example file is shipped and imports on the example bundle."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from app.cli import main
from core.settings import Settings
from core.store import Database
from serving.registry import Registry
from tests.support.bundles import EXAMPLE

RESULTS = Path(__file__).resolve().parents[2] / "examples" / "iris-offline-results.json"


def test_the_readme_s_example_results_import(cli: CliRunner, settings: Settings) -> None:
    assert cli.invoke(main, ["candidates", "register", str(EXAMPLE)]).exit_code == 0
    result = cli.invoke(main, ["candidates", "offline-results", "iris-onnx", str(RESULTS)])
    assert result.exit_code == 0, result.output
    with Database(settings.database_url) as database:
        stored = Registry(database).get("iris-onnx").offline_results
    assert stored["overall"]["n"] == 60
    assert abs(stored["overall"]["accuracy"] - (0.9667 + 0.8333) / 2) < 1e-9
    assert set(stored["slices"]) == {"lab", "field"}
