"""A [remote] manifest is checked against the server it names before it is registered: a model
or version the server does not serve, a server that does not answer or is not ready, and inputs
other than the ones the server declares are refused naming the field, and nothing is stored; a
matching manifest registers, and `check_remote=False` registers without asking. Against a real
MLServer 1.7.1 that declares its model's inputs, and a stub for the not-ready case."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from app.cli import main
from serving.bundles import ManifestError, register_bundle
from serving.registry import Registry
from tests.support import inference_servers
from tests.support.ports import free_port
from tests.support.stub_server import StubServer, reply

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "bundles"
MODEL = EXAMPLES / "iris-onnx" / "model.onnx"
DECLARED = [{"name": "features", "datatype": "FP32", "shape": [-1, 4]}]


@pytest.fixture(scope="module")
def server() -> Iterator[inference_servers.InferenceServer]:
    running = inference_servers.mlserver(MODEL, inputs=DECLARED).start()
    yield running
    running.stop()


def _manifest(tmp_path: Path, url: str, *, model: str = "iris", version: str | None = None,
              name: str = "features", datatype: str = "FP32", shape: str = "[-1, 4]") -> Path:
    folder = tmp_path / "remote"
    folder.mkdir(exist_ok=True)
    pinned = f'version = "{version}"\n' if version else ""
    (folder / "candidate.toml").write_text(
        f'name = "iris-far"\nversion = "1"\n[[inputs]]\nname = "{name}"\n'
        f'datatype = "{datatype}"\nshape = {shape}\n[output]\ntype = "label"\n'
        f'classes = {json.dumps(["setosa", "versicolor", "virginica"])}\n'
        f'[remote]\nurl = "{url}"\nmodel = "{model}"\n{pinned}timeout_ms = 2000\n')
    return folder


def _refused(registry: Registry, models: Path, folder: Path, match: str) -> None:
    with pytest.raises(ManifestError, match=match):
        register_bundle(registry, models, folder)
    assert registry.list() == []
    assert not (models / "bundles" / "iris-far").exists(), "no files kept for a refusal"


def test_a_manifest_the_server_serves_registers(
        registry: Registry, models: Path, tmp_path: Path,
        server: inference_servers.InferenceServer) -> None:
    info = register_bundle(registry, models, _manifest(tmp_path, server.url, version="1"))
    assert (info.name, info.backend) == ("iris-far", "remote")


def test_the_example_remote_manifest_registers_against_a_real_server(
        registry: Registry, models: Path, tmp_path: Path,
        server: inference_servers.InferenceServer) -> None:
    folder = tmp_path / "iris-remote"
    folder.mkdir()
    text = (EXAMPLES / "iris-remote" / "candidate.toml").read_text()
    assert 'url = "http://127.0.0.1:8081"' in text
    (folder / "candidate.toml").write_text(
        text.replace('url = "http://127.0.0.1:8081"', f'url = "{server.url}"'))
    info = register_bundle(registry, models, folder)
    assert (info.name, info.backend) == ("iris-mlserver", "remote")


@pytest.mark.parametrize(("change", "match"), [
    ({"model": "irsi"}, r"^remote.model: remote model 'irsi' at http://127.0.0.1:\d+ answered "
                        r"404: Model irsi not found \(the server does not serve model 'irsi'\)"),
    ({"version": "7"}, r"^remote.version: .* answered 404: .*\(the server does not serve model "
                       r"'iris' version '7'\)"),
    ({"datatype": "FP64"}, r"^input 'features' is declared FP64 but the remote model 'iris' "
                           r"takes FP32"),
    ({"name": "petals"}, r"^inputs 'petals' do not match the inputs of the remote model "
                         r"'iris': 'features'"),
    ({"shape": "[-1, 5]"}, r"^input 'features' dimension 1 is declared 5 but the remote model "
                           r"'iris' fixes it at 4"),
])
def test_what_the_server_does_not_serve_is_refused(
        registry: Registry, models: Path, tmp_path: Path,
        server: inference_servers.InferenceServer, change: dict, match: str) -> None:
    _refused(registry, models, _manifest(tmp_path, server.url, **change), match)


def test_binary_tensors_to_mlserver_are_refused(
        registry: Registry, models: Path, tmp_path: Path,
        server: inference_servers.InferenceServer) -> None:
    """MLServer does not read the binary tensor data extension: registered, every call failed
    with a 502."""
    folder = _manifest(tmp_path, server.url)
    toml = folder / "candidate.toml"
    toml.write_text(toml.read_text() + "binary_data = true\n")
    _refused(registry, models, folder, r"remote.binary_data: the server is Seldon MLServer, "
                                       r"which does not read the binary tensor data extension")


def test_a_server_that_does_not_answer_is_refused_unless_the_check_is_off(
        registry: Registry, models: Path, tmp_path: Path) -> None:
    folder = _manifest(tmp_path, f"http://127.0.0.1:{free_port()}")  # nothing listens there
    _refused(registry, models, folder,
             r"^remote.url: remote model 'iris' at http://127.0.0.1:\d+ is unreachable: .*; "
             r"start the server \(or correct remote.url\), or register with "
             r"--no-check-remote")
    info = register_bundle(registry, models, folder, check_remote=False)
    assert info.backend == "remote" and [c.name for c in registry.list()] == ["iris-far"]


def test_a_model_that_is_not_ready_is_refused(
        registry: Registry, models: Path, tmp_path: Path,
        stub_server: Callable[..., StubServer]) -> None:
    def loading(handler, _body: bytes) -> None:  # noqa: ANN001
        if handler.path.endswith("/ready"):
            reply(handler, 503, {"error": "loading"})
        else:
            reply(handler, 200, {"name": "iris", "inputs": [], "outputs": []})
    stub = stub_server(loading, gets=True)
    _refused(registry, models, _manifest(tmp_path, stub.url),
             r"^remote.model: model 'iris' at http://127.0.0.1:\d+ is not ready")
    assert stub.hits == 2  # the metadata, then the readiness


def test_the_command_line_says_what_to_fix_and_can_skip_the_check(
        tmp_path: Path, server: inference_servers.InferenceServer) -> None:
    env = {"ABVOC_DATA_DIR": str(tmp_path / "data")}
    folder = _manifest(tmp_path, server.url, model="irsi")
    assert CliRunner().invoke(main, ["db", "upgrade"], env=env).exit_code == 0
    refused = CliRunner().invoke(main, ["candidates", "register", str(folder)], env=env)
    assert refused.exit_code != 0
    assert "remote.model: remote model 'irsi' at" in refused.stderr
    skipped = CliRunner().invoke(main, ["candidates", "register", str(folder),
                                        "--no-check-remote", "--json"], env=env)
    assert skipped.exit_code == 0, skipped.output
    assert json.loads(skipped.stdout)["backend"] == "remote"
