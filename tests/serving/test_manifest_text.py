"""The manifest's free text, names and shapes: each value that the rest of abvoc could not store,
show, request or answer is refused naming its key, and nothing is stored (as MANIFEST_CASES in
test_bundles.py, whose file is full)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from serving.bundles import ManifestError
from serving.bundles.manifest import parse_manifest
from serving.registry import Registry
from tests.support.bundles import edit, refused

DESCRIPTION = ('description = "Iris-like flower classifier (ONNX) with a label '
               'post-processing stage"')
CLASSES = 'classes = ["setosa", "versicolor", "virginica"]'

TEXT_CASES = [
    (DESCRIPTION, 'description = "a\\u0000b"', r"^description must not contain NUL"),
    (DESCRIPTION, f'description = "{"d" * 5_000}"',
     r"^description is 5000 characters; the limit is 2000"),
    ('name = "to_label"', 'name = "s\\u0007\\n"',
     r"stages\[1\].name 's\\x07\\n' must not contain control characters"),
    ('name = "to_label"', f'name = "{"s" * 100_000}"',
     r"stages\[1\].name is 100000 characters; the limit is 50"),
    ('name = "features"', 'name = "x\\u0000"', r"inputs\[0\].name 'x\\x00' must not contain NUL"),
    ('name = "features"', 'name = "x\\ty"', r"inputs\[0\].name 'x\\ty' must not contain control"),
    ('name = "features"', f'name = "{"x" * 101}"',
     r"inputs\[0\].name is 101 characters; the limit is 100"),
    (CLASSES, f'classes = ["{"b" * 20_000}", "a"]',
     r"output.classes 'bbbb.*' is 20000 characters; a class name is at most 100"),
    (CLASSES, f'classes = ["{"b" * 101}", "a"]',
     r"output.classes 'bbbb.*' is 101 characters; a class name is at most 100"),
    (CLASSES, 'classes = ["a", " "]', r"output.classes ' ' is blank"),
    (CLASSES, 'classes = ["a", "\\u00a0\\t"]', r"output.classes '\\xa0\\t' is blank"),
    ("shape = [-1, 4]", "shape = [-1, 9223372036854775807]",
     r"inputs\[0\].shape must be a non-empty list of sizes from 1 to 2147483648 or -1"),
    ("shape = [-1, 4]", "shape = [-1, 0]", r"inputs\[0\].shape must be .* sizes from 1 to"),
    # Sizes no request can hold (a /v2 body is at most 32 MiB): every request would fail.
    ("shape = [-1, 4]", "shape = [2147483648, 4]",
     r"^inputs\[0\].shape \[2147483648, 4\] needs at least 8589934592 values a request, more "
     r"than the 16777216 a request's tensor may hold"),
    ("shape = [-1, 4]", "shape = [-1, 4096, 4097]",
     r"^inputs\[0\].shape \[-1, 4096, 4097\] needs at least 16781312 values"),
    ("shape = [-1, 4]", f"shape = [{', '.join(['-1'] * 200)}]",
     r"inputs\[0\].shape has 200 dimensions; at most 32"),
    # The version's every rule is said: these were told they "must be letters, digits".
    ('version = "1"', f'version = "{"1" * 300}"',
     r"^version '1{60}…' \(300 characters\) must be 1 to 50 letters, digits, .* starting with "
     r"a letter or digit$"),
    ('version = "1"', 'version = "-1"', r"^version '-1' \(2 characters\) must be 1 to 50 .* "
                                         r"starting with a letter or digit$"),
    # TOML dates and times as TOML writes them, not as Python's reprs (datetime.date(...)).
    ('version = "1"', "version = 1979-05-27",
     r"^version must be a str or int, got a TOML date 1979-05-27$"),
    ('version = "1"', "version = 1979-05-27T07:32:00",
     r"^version must be a str or int, got a TOML date-time 1979-05-27T07:32:00$"),
    ("max_batch_size = 32", "max_batch_size = 07:32:00",
     r"^batching.max_batch_size must be a int, got a TOML time 07:32:00$"),
    ("shape = [-1, 4]", "shape = [-1, 1979-05-27]",
     r"^inputs\[0\].shape must be .* or -1 \(any size\), got \[-1, 1979-05-27\]$"),
    # tomllib recurses per level: a RecursionError traceback (a 500 through the API).
    ('version = "1"', 'version = "1"\nx = ' + "[" * 5000 + "]" * 5000,
     r"^candidate.toml is nested too deeply"),
]


@pytest.mark.parametrize(("old", "new", "fragment"), TEXT_CASES,
                         ids=[c[2][:40] for c in TEXT_CASES])
def test_manifest_text_refusals_name_what_to_fix(registry: Registry, models: Path, bundle: Path,
                                                 old: str, new: str, fragment: str) -> None:
    edit(bundle, old, new)
    refused(registry, models, bundle, fragment)


def _manifest(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "n", "version": "1", "backend": "onnxruntime",
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
        "output": {"type": "label", "classes": ["a", "b"]},
        "stages": [{"name": "s", "kind": "python", "callable": "pkg.mod:run"}],
    }
    return {**data, **changes}


def _remote(**remote: str) -> dict[str, Any]:
    """A remote candidate's manifest: `remote` as its [remote] table, no backend or stages."""
    data = _manifest(remote=remote)
    for key in ("backend", "stages"):
        data.pop(key)
    return data


@pytest.mark.parametrize(("changes", "fragment"), [
    ({"description": "a\ud800"}, r"^description must be valid Unicode"),
    ({"inputs": [{"name": "x\ud800", "datatype": "FP32", "shape": [-1]}]},
     r"^inputs\[0\].name 'x\\ud800' must be valid Unicode"),
    ({"stages": [{"name": "s\x1b", "kind": "python", "callable": "pkg.mod:run"}]},
     r"^stages\[0\].name 's\\x1b' must not contain control characters"),
])
def test_text_no_toml_file_can_hold_is_refused_too(changes: dict[str, Any],
                                                   fragment: str) -> None:
    """Lone surrogates cannot be written in TOML, but parse_manifest takes any data."""
    with pytest.raises(ManifestError, match=fragment):
        parse_manifest(_manifest(**changes))


def test_the_limits_themselves_are_taken() -> None:
    manifest = parse_manifest(_manifest(
        description="line one\nline two" + "d" * 1_983,
        inputs=[{"name": "x" * 100, "datatype": "FP32", "shape": [-1] * 30 + [4096, 4096]}],
        output={"type": "label", "classes": ["b" * 100, "a b"]},
        stages=[{"name": "s" * 50, "kind": "python", "callable": "pkg.mod:run"}]))
    assert len(manifest.description) == 2_000 and len(manifest.inputs[0].shape) == 32
    assert manifest.stages[0].name == "s" * 50 and manifest.output.classes[1] == "a b"


def test_the_command_line_exits_2_naming_the_key(bundle: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from app.cli import main

    for var in ("ABVOC_DATABASE_URL", "ABVOC_CONFIG", "ABVOC_MODEL_STORE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ABVOC_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"]).exit_code == 0
    edit(bundle, 'name = "to_label"', 'name = "to\\nlabel"')
    result = runner.invoke(main, ["candidates", "register", str(bundle)])
    assert result.exit_code == 2, result.output
    assert "stages[1].name 'to\\nlabel' must not contain control characters" in result.output
    listed = runner.invoke(main, ["candidates", "list", "--all", "--json"])
    assert listed.exit_code == 0 and json.loads(listed.output) == []


def test_an_empty_remote_version_is_refused() -> None:
    """`version = ""` would call .../versions//infer on the team's server."""
    data = _remote(url="http://127.0.0.1:9", model="m", version="")
    with pytest.raises(ManifestError, match=r"^remote.version must not be empty"):
        parse_manifest(data)
    data["remote"]["version"] = "2"
    assert parse_manifest(data).remote.version == "2"


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/base?x=1", "http://127.0.0.1:9/base#top",
                                 "http://127.0.0.1:9?"])
def test_a_remote_url_with_a_query_or_fragment_is_refused(url: str) -> None:
    """abvoc appends /v2/models/<model>/infer to the URL: after a query it was part of the
    query (the server saw /base), after a fragment it was cut off, and every call missed."""
    data = _remote(url=url, model="m")
    with pytest.raises(ManifestError, match=r"^remote.url .* must have no query or fragment"):
        parse_manifest(data)
    data["remote"]["url"] = "http://127.0.0.1:9/base/"
    assert parse_manifest(data).remote.url == "http://127.0.0.1:9/base"
