"""The candidate API: a team's bundle uploaded as a .tar.gz, registered, versioned, shown and
retired; every refusal is a 400 naming the field or file with nothing stored, and an oversized
upload is a 413 (one without a length a 411) before its body is read."""

from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from serving.bundles import BundleRunner
from tests.support.bundles import EXAMPLE, FLOWERS
from tests.support.ports import free_port


def targz(files: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    """A gzipped tar of `files` (and symbolic `links`), built in memory."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return out.getvalue()


def example_files(**replace: tuple[str, str]) -> dict[str, bytes]:
    """The example bundle's files under `iris/`; `candidate_toml=(old, new)` edits the manifest."""
    files = {f"iris/{p.name}": p.read_bytes() for p in sorted(EXAMPLE.iterdir()) if p.is_file()}
    for _, (old, new) in replace.items():
        text = files["iris/candidate.toml"].decode()
        assert old in text, old
        files["iris/candidate.toml"] = text.replace(old, new, 1).encode()
    return files


def upload(client: FlaskClient, headers: dict, data: bytes, filename: str = "iris.tar.gz",
           field: str = "bundle"):  # noqa: ANN201
    return client.post("/v1/candidates", headers=headers,
                       data={field: (io.BytesIO(data), filename)},
                       content_type="multipart/form-data")


def stored(app: Flask) -> tuple[list[tuple[str, str]], list[Path]]:
    """The registry's rows and the files under the bundle store: what a refusal must not change."""
    registry = app.extensions["abvoc_serving"].registry
    rows = [(c.name, c.version) for c in registry.list(include_retired=True)]
    folder = Path(app.extensions["abvoc"].settings.models_dir) / "bundles"
    return rows, sorted(folder.rglob("*")) if folder.exists() else []


def test_register_show_version_and_retire(app: Flask, client: FlaskClient, admin: dict) -> None:
    response = upload(client, admin, targz(example_files()))
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert (body["name"], body["version"], body["backend"]) == ("iris-onnx", "1", "onnxruntime")
    assert body["pipeline"]["output"]["classes"] == ["setosa", "versicolor", "virginica"]
    assert response.headers["Location"] == "/v1/candidates/iris-onnx?version=1"
    with BundleRunner.open(Path(body["artifacts"])) as runner:
        assert list(runner.predict({"features": FLOWERS})["label"]) == \
            ["setosa", "versicolor", "virginica"]
    listed = client.get("/v1/candidates", headers=admin).get_json()["candidates"]
    assert ("iris-onnx", "1") in [(c["name"], c["version"]) for c in listed]

    again = upload(client, admin, targz(example_files()))
    assert again.status_code == 409 and "new version" in again.get_json()["error"]
    v2 = upload(client, admin, targz(example_files(v=('version = "1"', 'version = "2"'))))
    assert v2.status_code == 201
    assert client.get("/v1/candidates/iris-onnx", headers=admin).get_json()["version"] == "2"
    one = client.get("/v1/candidates/iris-onnx?version=1", headers=admin).get_json()
    assert one["version"] == "1" and one["retired_at"] is None

    retired = client.post("/v1/candidates/iris-onnx/retire?version=2", headers=admin)
    assert retired.status_code == 200
    assert [(c["name"], c["version"]) for c in retired.get_json()["retired"]] == \
        [("iris-onnx", "2")]
    assert client.get("/v1/candidates/iris-onnx", headers=admin).get_json()["version"] == "1"
    kept = client.get("/v1/candidates/iris-onnx?version=2", headers=admin).get_json()
    assert kept["retired_at"] is not None  # still shown: experiments that ran it keep it
    listed = client.get("/v1/candidates", headers=admin).get_json()["candidates"]
    assert ("iris-onnx", "2") not in [(c["name"], c["version"]) for c in listed]
    everything = client.post("/v1/candidates/iris-onnx/retire", headers=admin).get_json()
    assert [c["version"] for c in everything["retired"]] == ["1"]
    gone = client.get("/v1/candidates/iris-onnx", headers=admin)
    assert gone.status_code == 404
    assert re.search(r"'iris-onnx' is retired .*candidates list --all.*\?all=1",
                     gone.get_json()["error"])
    nope = client.get("/v1/candidates/nope", headers=admin)
    assert nope.status_code == 404 and "'nope' is not registered" in nope.get_json()["error"]

    def iris(query: str = "") -> list[tuple[str, bool]]:
        listed = client.get(f"/v1/candidates{query}", headers=admin).get_json()["candidates"]
        return [(c["version"], c["retired_at"] is not None) for c in listed
                if c["name"] == "iris-onnx"]

    assert iris() == iris("?all=0") == []
    for flag in ("1", "true", ""):
        assert iris(f"?all={flag}") == [("1", True), ("2", True)]
    odd = client.get("/v1/candidates?all=maybe", headers=admin)
    assert odd.status_code == 400 and "'all' must be 1" in odd.get_json()["error"]
    assert client.post("/v1/candidates/nope/retire", headers=admin).status_code == 404
    assert client.get("/v1/candidates/iris-onnx?version=9", headers=admin).status_code == 404


REFUSALS = [
    ("no archive", b"\x1f\x8b not gzip at all", r"iris.tar.gz is not a readable .tar.gz"),
    ("dotdot", targz({**example_files(), "iris/../../evil.py": b"x"}), r"contains '\.\.'"),
    ("absolute", targz({**example_files(), "/tmp/evil.py": b"x"}), r"is an absolute path"),
    ("link out", targz({k: v for k, v in example_files().items() if k != "iris/model.onnx"},
                       {"iris/model.onnx": "../../etc/passwd"}), r"outside the bundle"),
    ("unknown key", targz(example_files(k=('name = "iris-onnx"', 'name = "iris-onnx"\nx = 1'))),
     r"unknown key\(s\) 'x'; known keys"),
    ("missing file", targz(example_files(k=('path = "model.onnx"', 'path = "gone.onnx"'))),
     r"'gone.onnx' is missing"),
    ("not onnx", targz({**example_files(), "iris/model.onnx": b"not a graph"}),
     r"'model.onnx' does not load as ONNX"),
    ("signature", targz(example_files(k=("shape = [-1, 4]", "shape = [-1, 5]"))),
     r"input 'features' dimension 1 is declared 5 but the first stage 'classifier'"),
    ("no manifest", targz({"iris/model.onnx": b"x"}), r"no candidate.toml"),
]


@pytest.mark.parametrize(("data", "fragment"), [c[1:] for c in REFUSALS],
                         ids=[c[0] for c in REFUSALS])
def test_refusals_name_the_field_or_file_and_store_nothing(
        app: Flask, client: FlaskClient, admin: dict, data: bytes, fragment: str) -> None:
    before = stored(app)
    response = upload(client, admin, data)
    assert response.status_code == 400, response.get_json()
    assert re.search(fragment, response.get_json()["error"]), \
        response.get_json()
    settings = app.extensions["abvoc"].settings  # no server path reaches the caller
    assert str(settings.models_dir) not in response.get_json()["error"]
    assert stored(app) == before


def test_a_remote_nothing_serves_is_refused_unless_the_check_is_off(
        app: Flask, client: FlaskClient, admin: dict) -> None:
    toml = (f'name = "far"\nversion = "1"\n[[inputs]]\nname = "features"\ndatatype = "FP32"\n'
            f'shape = [-1, 4]\n[output]\ntype = "number"\n[remote]\n'
            f'url = "http://127.0.0.1:{free_port()}"\nmodel = "iris"\n')
    data = targz({"far/candidate.toml": toml.encode()})
    before = stored(app)
    refused = upload(client, admin, data)
    assert refused.status_code == 400
    assert re.match(r"remote.url: remote model 'iris' at http://127.0.0.1:\d+ is unreachable",
                    refused.get_json()["error"]), refused.get_json()
    odd = client.post("/v1/candidates?check_remote=no", headers=admin,
                      data={"bundle": (io.BytesIO(data), "far.tar.gz")},
                      content_type="multipart/form-data")
    assert odd.status_code == 400 and "'check_remote' must be true or false" in \
        odd.get_json()["error"]
    assert stored(app) == before
    unchecked = client.post("/v1/candidates?check_remote=false", headers=admin,
                            data={"bundle": (io.BytesIO(data), "far.tar.gz")},
                            content_type="multipart/form-data")
    assert unchecked.status_code == 201 and unchecked.get_json()["backend"] == "remote"


def test_form_refusals(app: Flask, client: FlaskClient, admin: dict) -> None:
    before = stored(app)
    cases = [
        (dict(json={"bundle": "x"}), r"send multipart/form-data"),
        (dict(data={"file": (io.BytesIO(b"x"), "a.tar.gz")}, content_type="multipart/form-data"),
         r"unknown form field\(s\) 'file'"),
        (dict(data={}, content_type="multipart/form-data"), r"exactly one file in the field"),
        (dict(data={"bundle": "not a file"}, content_type="multipart/form-data"),
         r"exactly one file in the field 'bundle'"),
        (dict(data={"bundle": (io.BytesIO(targz(example_files())), "iris.zip")},
              content_type="multipart/form-data"), r"field 'bundle': 'iris.zip' is not a .tar.gz"),
    ]
    for kwargs, fragment in cases:
        response = client.post("/v1/candidates", headers=admin, **kwargs)
        assert response.status_code == 400, (kwargs, response.get_json())
        assert re.search(fragment, response.get_json()["error"])
    assert stored(app) == before

def test_an_upload_named_only_by_its_suffix_registers(client: FlaskClient, admin: dict) -> None:
    """The file's name only labels messages: '.tar.gz' is a .tar.gz (secure_filename would
    make it 'tar.gz')."""
    response = upload(client, admin, targz(example_files()), filename=".tar.gz")
    assert response.status_code == 201, response.get_json()
    bad = upload(client, admin, b"\x1f\x8b not gzip", filename=".tgz")
    assert bad.status_code == 400 and "bundle.tgz is not a readable" in bad.get_json()["error"]


def test_class_names_that_no_correction_can_carry_are_refused(
        app: Flask, client: FlaskClient, admin: dict) -> None:
    before = stored(app)
    for bad in ('"a\\u0000b"', '"a\\u0007b"'):
        files = example_files(c=('"setosa"', bad))
        response = upload(client, admin, targz(files))
        assert response.status_code == 400, response.get_json()
        assert re.search(r"output.classes 'a\\x0[07]b' must not contain",
                         response.get_json()["error"])
    assert stored(app) == before


FILE_PART = (b'--xyzzy\r\nContent-Disposition: form-data; name="bundle"; filename="b.tar.gz"\r\n'
             b"Content-Type: application/gzip\r\n\r\n")


class CountingStream(io.RawIOBase):
    """A multipart body of `size` bytes, one file part that never ends, produced on demand and
    counting what the server reads."""

    def __init__(self, size: int) -> None:
        self.size, self.pos, self.read_bytes = size, 0, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:  # the test client measures the body by seeking
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = {0: 0, 1: self.pos, 2: self.size}[whence] + offset
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, buffer) -> int:  # noqa: ANN001
        n = max(min(len(buffer), self.size - self.pos), 0)
        data = (FILE_PART[self.pos:] + b"x" * n)[:n]
        buffer[:n] = data
        self.pos += n
        self.read_bytes += n
        return n


MULTIPART = "multipart/form-data; boundary=xyzzy"


def test_oversized_upload_is_413_before_the_body_is_read(app: Flask, client: FlaskClient,
                                                         admin: dict) -> None:
    app.config["MAX_BUNDLE_BYTES"] = 100_000
    body = CountingStream(50 << 20)
    response = client.post("/v1/candidates", headers=admin, input_stream=body,
                           content_type=MULTIPART)
    assert response.status_code == 413
    assert "larger than the bundle limit of 100000 bytes" in response.get_json()["error"]
    assert body.read_bytes == 0

    chunked = CountingStream(50 << 20)  # no Content-Length: nothing to check it against
    response = client.post("/v1/candidates", headers={**admin, "Transfer-Encoding": "chunked"},
                           input_stream=chunked, content_type=MULTIPART,
                           environ_overrides={"wsgi.input_terminated": True})
    assert response.status_code == 411, response.get_json()
    assert "needs a Content-Length header" in response.get_json()["error"]
    assert chunked.read_bytes == 0

    anonymous = CountingStream(1 << 20)
    response = client.post("/v1/candidates", input_stream=anonymous, content_type=MULTIPART)
    assert response.status_code == 401 and anonymous.read_bytes == 0

    app.config["MAX_BUNDLE_BYTES"] = 1000  # the framing fits, the archive itself does not
    before = stored(app)
    response = upload(client, admin, targz(example_files()))
    assert response.status_code == 413 and "1000 bytes" in response.get_json()["error"]
    assert stored(app) == before


def test_the_list_leaves_out_share_maps_that_show_keeps(app: Flask, client: FlaskClient,
                                                        admin: dict) -> None:
    """A candidate of many classes made every list megabytes long: the list carries each
    candidate's offline figures without their per-class shares, which show keeps."""
    assert upload(client, admin, targz(example_files())).status_code == 201
    shares = {"setosa": 0.2, "versicolor": 0.3, "virginica": 0.5}
    row = {"n": 10, "exact_match": 0.9, "label_shares": shares, "output_shares": shares}
    app.extensions["abvoc_serving"].registry.set_offline_results("iris-onnx", "1", {
        "output_type": "label", "overall": row, "slices": {"field": row},
        "label_shares": shares})
    listed, = [c for c in client.get("/v1/candidates", headers=admin).get_json()["candidates"]
               if c["name"] == "iris-onnx"]
    brief = {"n": 10, "exact_match": 0.9}
    assert listed["offline_results"] == {"output_type": "label", "overall": brief,
                                         "slices": {"field": brief}}
    shown = client.get("/v1/candidates/iris-onnx", headers=admin).get_json()
    assert shown["offline_results"]["label_shares"] == shares
    assert shown["offline_results"]["slices"]["field"]["output_shares"] == shares


def test_an_unwritable_model_store_is_a_503_naming_it(app: Flask, client: FlaskClient,
                                                      admin: dict,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The service's set-up, not the upload, is at fault: said as such, nothing registered
    (it was an OSError's bare 500). /proc/self is a folder no one can write in."""
    state = app.extensions["abvoc"]
    monkeypatch.setattr(state, "settings", state.settings.with_overrides(model_store="/proc/self"))
    before = stored(app)[0]
    response = upload(client, admin, targz(example_files()))
    assert response.status_code == 503, response.get_json()
    assert "the model store (ABVOC_MODEL_STORE" in response.get_json()["error"]
    assert "cannot be written: /proc/self/bundles" in response.get_json()["error"]
    assert stored(app)[0] == before


def test_the_location_of_a_version_with_a_plus_leads_to_it(client: FlaskClient,
                                                            admin: dict) -> None:
    """Unquoted, `?version=1+build` read as version "1 build": a 404 for what was just made."""
    made = upload(client, admin, targz(example_files(
        candidate_toml=('version = "1"', 'version = "1+build"'))))
    assert made.status_code == 201, made.get_json()
    assert made.headers["Location"] == "/v1/candidates/iris-onnx?version=1%2Bbuild"
    shown = client.get(made.headers["Location"], headers=admin)
    assert shown.status_code == 200 and shown.get_json()["version"] == "1+build"


def test_a_candidate_registered_a_moment_ago_is_served_by_its_name(
        client: FlaskClient, admin: dict, predictor: dict) -> None:
    """The names read up to 5 s before (the first request) did not hold it yet, and the 404
    said it was retired, every version of it."""
    from tests.support.v2 import flowers, infer_body

    body = infer_body(flowers(1)[0][None], "unit-1")
    assert upload(client, admin, targz(example_files())).status_code == 201
    assert client.post("/v2/models/iris-onnx/infer", headers=predictor,
                       json=body).status_code == 200
    fresh = upload(client, admin, targz(example_files(
        candidate_toml=('name = "iris-onnx"', 'name = "iris-fresh"'))))
    assert fresh.status_code == 201, fresh.get_json()
    answer = client.post("/v2/models/iris-fresh/infer", headers=predictor, json=body)
    assert answer.status_code == 200, answer.get_json()


def test_retire_refuses_a_body_rather_than_retire_every_version(
        client: FlaskClient, admin: dict) -> None:
    """The version goes in the query; a body naming one was ignored, and every active version
    retired: for good, since a retired version cannot be registered again."""
    for version in ("1", "2"):
        made = upload(client, admin, targz(example_files(
            v=('version = "1"', f'version = "{version}"'))))
        assert made.status_code == 201, made.get_json()
    for body in ({"version": "1"}, "version=1", ["1"]):
        sent = (client.post("/v1/candidates/iris-onnx/retire", headers=admin, json=body)
                if not isinstance(body, str) else
                client.post("/v1/candidates/iris-onnx/retire", headers=admin, data=body,
                            content_type="application/x-www-form-urlencoded"))
        assert sent.status_code == 400, sent.get_json()
        assert "?version=" in sent.get_json()["error"], sent.get_json()
    listed = client.get("/v1/candidates", headers=admin).get_json()["candidates"]
    assert sorted(c["version"] for c in listed if c["name"] == "iris-onnx") == ["1", "2"]
    # No body, or an empty JSON object, is still a retire.
    assert client.post("/v1/candidates/iris-onnx/retire?version=1", headers=admin,
                       json={}).status_code == 200
    retired = client.post("/v1/candidates/iris-onnx/retire", headers=admin).get_json()
    assert [c["version"] for c in retired["retired"]] == ["2"]
