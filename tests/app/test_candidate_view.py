"""A candidate as the API and the CLI show it: a remote's URL never with its user or password
(a token in the user part is as secret as a password), and its times with their UTC offset
when read back from the store, as when it was registered."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from flask import Flask

from app.cli import main
from core.settings import Settings
from tests.support.keys import bearer
from tests.support.v2 import post_bundle, remote_bundle, upload

URL = "http://alice:s3cret-pw@127.0.0.1:9"


def test_a_remote_url_is_shown_without_its_credentials(v2app: Flask, settings: Settings,
                                                        tmp_path: Path) -> None:
    admin = bearer(v2app, "admin")
    made = upload(v2app.test_client(), admin, remote_bundle(tmp_path, "iris-u1", URL),
                  check_remote=False)
    client = v2app.test_client()
    shown = [made, client.get("/v1/candidates/iris-u1", headers=admin).get_json(),
             *client.get("/v1/candidates", headers=admin).get_json()["candidates"]]
    cli = CliRunner().invoke(main, ["candidates", "show", "iris-u1", "--json"],
                             env={"ABVOC_DATA_DIR": str(settings.data_dir),
                                  "ABVOC_DATABASE_URL": settings.database_url})
    assert cli.exit_code == 0, cli.output
    shown.append(json.loads(cli.output))
    for view in shown:
        assert view["pipeline"]["remote"]["url"] == "http://***@127.0.0.1:9", view
        assert "s3cret" not in json.dumps(view) and "alice" not in json.dumps(view)
        assert view["created_at"].endswith("+00:00") and view["updated_at"].endswith("+00:00")
    # Serving still calls the server with its credentials.
    pipeline = v2app.extensions["abvoc_serving"].registry.get("iris-u1").pipeline
    assert pipeline["remote"]["url"] == URL


def test_a_candidate_without_requirements_says_none(v2app: Flask, settings: Settings,
                                                    tmp_path: Path) -> None:
    """`candidates show` printed a bare "requirements: " for a bundle naming none (and a
    bare ": " after its name where it has no description)."""
    upload(v2app.test_client(), bearer(v2app, "admin"),
           remote_bundle(tmp_path, "iris-bare", "http://127.0.0.1:9"), check_remote=False)
    cli = CliRunner().invoke(main, ["candidates", "show", "iris-bare"],
                             env={"ABVOC_DATA_DIR": str(settings.data_dir),
                                  "ABVOC_DATABASE_URL": settings.database_url})
    assert cli.exit_code == 0, cli.output
    lines = cli.output.splitlines()
    assert lines[0] == "iris-bare v1 (remote)" and "requirements: none" in lines, lines


def _refusals(v2app: Flask, settings: Settings, folder: Path) -> tuple[str, str]:
    """The API's 400 and the CLI's one line for registering `folder`."""
    answer = post_bundle(v2app.test_client(), bearer(v2app, "admin"), folder)
    assert answer.status_code == 400, answer.get_json()
    cli = CliRunner().invoke(main, ["candidates", "register", str(folder)],
                             env={"ABVOC_DATA_DIR": str(settings.data_dir),
                                  "ABVOC_DATABASE_URL": settings.database_url})
    # Refused in words (click's exit), not an exception the runner caught.
    assert cli.exit_code != 0 and isinstance(cli.exception, SystemExit), (cli.exception,
                                                                         cli.output)
    assert len(cli.output.strip().splitlines()) == 1, cli.output
    return answer.get_json()["error"], cli.output


def test_a_remote_url_urllib_cannot_read_is_a_400_naming_it(v2app: Flask, settings: Settings,
                                                             tmp_path: Path) -> None:
    """urlsplit raises ValueError on these: a 500 from the API, a traceback from the CLI."""
    for i, url in enumerate(["http://[::1", "http://alice:s3cret-pw@[x]:80",
                             "http://127.0.0.1:99999"]):
        api, cli = _refusals(v2app, settings, remote_bundle(tmp_path, f"iris-bad{i}", url))
        for said in (api, cli):
            assert "remote.url" in said and "is not a URL that can be read" in said, said
            assert "s3cret" not in said and "alice" not in said, said


def test_a_refused_remote_url_is_quoted_without_its_credentials(
        v2app: Flask, settings: Settings, tmp_path: Path) -> None:
    """The scheme refusal echoed the URL whole, password included."""
    cases = [("htp://alice:s3cret-pw@127.0.0.1:9", "'htp://***@127.0.0.1:9' must be an http://"),
             ("alice:s3cret-pw@127.0.0.1:9", "'***@127.0.0.1:9' must be an http://"),
             ("http:/alice:s3cret-pw@127.0.0.1:9", "'***@127.0.0.1:9' must be an http://")]
    for i, (url, words) in enumerate(cases):
        api, cli = _refusals(v2app, settings, remote_bundle(tmp_path, f"iris-scheme{i}", url))
        for said in (api, cli):
            assert words in said and "s3cret" not in said and "alice" not in said, said
    listed = remote_bundle(tmp_path, "iris-listed", "x")
    toml = listed / "candidate.toml"
    toml.write_text(toml.read_text().replace('url = "x"', f'url = ["{URL}"]'))
    api, cli = _refusals(v2app, settings, listed)
    for said in (api, cli):
        assert "remote.url must be a string" in said and "s3cret" not in said, said
