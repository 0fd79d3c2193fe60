"""Bundle limits: archive members that would escape the bundle and decompression bombs are
refused while the archive is read, before anything is extracted or stored; a bundle whose
loading never ends is refused in bounded time."""

from __future__ import annotations

import gzip
import io
import shutil
import tarfile
import time
import tracemalloc
from pathlib import Path

import pytest

from serving.bundles import BundleRunner, Limits, register_bundle
from serving.registry import Registry
from tests.support.bundles import EXAMPLE, FLOWERS, refused


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _link(name: str, target: str, kind: bytes) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def _bundle_members(bundle: Path, prefix: str = "iris/") -> list[tuple[tarfile.TarInfo, bytes]]:
    return [_file(prefix + p.name, p.read_bytes()) for p in sorted(bundle.iterdir())
            if p.is_file()]


ARCHIVE_CASES = [
    ([_file("/etc/cron.d/evil", b"x")], r"'/etc/cron.d/evil' is an absolute path"),
    ([_file("iris/../../evil.py", b"x")], r"contains '\.\.'"),
    ([_link("iris/model.onnx", "/etc/passwd", tarfile.SYMTYPE)], r"links to the absolute path"),
    ([_link("iris/model.onnx", "../../etc/passwd", tarfile.SYMTYPE)], r"outside the bundle"),
    ([_link("iris/model.onnx", "/etc/passwd", tarfile.LNKTYPE)],
     r"^hard link 'iris/model.onnx': its target '/etc/passwd' is an absolute path$"),
    ([_link("iris/model.onnx", "../x", tarfile.LNKTYPE)],
     r"^hard link 'iris/model.onnx': its target '../x' contains '\.\.'$"),
    ([_link("iris/model.onnx", "iris/elsewhere", tarfile.LNKTYPE)], r"not a file of the bundle"),
    ([_link("iris/tty", "", tarfile.CHRTYPE)], r"not a file or folder"),
    # Each link inside on its own; through the ones before it the last leaves the bundle:
    # nothing may lie under a link (archive_links), named by the archive's names.
    ([_link("iris/d", ".", tarfile.SYMTYPE), _link("iris/d/e", "..", tarfile.SYMTYPE),
      _link("iris/d/e/p", "../etc/passwd", tarfile.SYMTYPE)],
     r"^archive member 'iris/d/e' lies under 'iris/d', a link: put files in folders, not "
     r"links$"),
    ([_file("iris/x", b"x"), _file("iris/x/y", b"y")],
     r"^archive member 'iris/x/y' cannot be unpacked: Not a directory \(a file of the archive "
     r"has the name of a folder on its path\)$"),
]


@pytest.mark.parametrize(("bad", "fragment"), ARCHIVE_CASES,
                         ids=[c[1][:30] for c in ARCHIVE_CASES])
def test_archive_members_that_escape_arerefused(registry: Registry, models: Path, bundle: Path,
                                                 tmp_path: Path, bad: list, fragment: str) -> None:
    archive = _tar(tmp_path / "evil.tar.gz", [*bad, *_bundle_members(bundle)])
    refused(registry, models, archive, fragment)
    assert not (tmp_path / "etc").exists()


def test_archive_limits_stop_bombs(registry: Registry, models: Path, bundle: Path,
                                   tmp_path: Path) -> None:
    bomb = _tar(tmp_path / "bomb.tar.gz", [_file("iris/zeros.bin", bytes(8 << 20)),
                                           *_bundle_members(bundle)])
    assert bomb.stat().st_size < 64 << 10  # small on disk, 8 MiB unpacked
    refused(registry, models, bomb, r"unpacks to more than 1048576 bytes",
             Limits(max_unpacked_bytes=1 << 20))
    refused(registry, models, bomb, r"more than 3 members", Limits(max_members=3))
    refused(registry, models, bomb, r"bundles are limited to 1000 bytes",
             Limits(max_archive_bytes=1000))


def test_a_long_name_header_is_refused_before_it_is_read(registry: Registry, models: Path,
                                                          tmp_path: Path) -> None:
    """A GNU long-name header declaring 64 MiB of name (64 KiB of gzip) was read whole into
    memory (8 GiB for a 5 MB upload declaring 1 GiB), and the refusal quoted all of it."""
    archive = tmp_path / "long-name.tar.gz"
    header = tarfile.TarInfo("././@LongLink")
    header.type, header.size = tarfile.GNUTYPE_LONGNAME, 64 << 20
    with gzip.open(archive, "wb", compresslevel=1) as out:
        out.write(header.tobuf(format=tarfile.GNU_FORMAT))
        for _ in range(64):
            out.write(b"a" * (1 << 20))
        out.write(_file("x", b"")[0].tobuf(format=tarfile.GNU_FORMAT) + bytes(1024))
    tracemalloc.start()
    try:
        error = refused(registry, models, archive, r"^the archive declares a header \(a long "
                        r"name or pax header\) of 67108864 bytes; at most 65536 bytes are read$")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20 and len(error.message) < 200


def test_a_chain_of_long_name_headers_is_refused(registry: Registry, models: Path,
                                                  tmp_path: Path) -> None:
    """tarfile reads each such header by calling itself for the next: 2,000 in a row (20 KB
    of gzip) ran out of stack, a RecursionError and a 500."""
    archive = tmp_path / "chain.tar.gz"
    header = tarfile.TarInfo("././@LongLink")
    header.type, header.size = tarfile.GNUTYPE_LONGNAME, 2
    with gzip.open(archive, "wb") as out:
        out.write((header.tobuf(format=tarfile.GNU_FORMAT) + b"a" + bytes(511)) * 2000)
        out.write(_file("x", b"")[0].tobuf(format=tarfile.GNU_FORMAT) + bytes(1024))
    refused(registry, models, archive, r"^chain.tar.gz chains hundreds of long-name or pax "
                                       r"headers before a member; a tar writer puts one or two "
                                       r"before each$")


@pytest.mark.parametrize(("pax", "said"), [
    ({"mtime": "inf"}, "timestamp out of range for platform time_t"),
    ({"mtime": "nan"}, "Invalid value NaN"),
    ({"path": "iris/a\x00b"}, "embedded null byte"),
])
def test_header_values_the_system_refuses_are_refused(registry: Registry, models: Path,
                                                      bundle: Path, tmp_path: Path,
                                                      pax: dict[str, str], said: str) -> None:
    """os.utime's OverflowError and ValueError, and open's ValueError, were 500s."""
    archive = tmp_path / "odd.tar.gz"
    with tarfile.open(archive, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for info, data in [_file("iris/notes.txt", b"abc"), *_bundle_members(bundle)]:
            info.pax_headers = pax if info.name == "iris/notes.txt" else {}
            tar.addfile(info, io.BytesIO(data))
    refused(registry, models, archive, r"^archive member 'iris/(notes.txt|a\\x00b)' cannot be "
                                       rf"unpacked: its header holds a value the system refuses "
                                       rf"\({said}")


def test_archive_with_internal_links_registers(registry: Registry, models: Path, bundle: Path,
                                               tmp_path: Path) -> None:
    members = [m for m in _bundle_members(bundle) if m[0].name != "iris/model.onnx"]
    members += [_file("iris/weights/model-v1.onnx", (bundle / "model.onnx").read_bytes()),
                _link("iris/model.onnx", "weights/model-v1.onnx", tarfile.SYMTYPE)]
    info = register_bundle(registry, models, _tar(tmp_path / "ok.tar.gz", members))
    stored = Path(info.artifacts)
    assert not (stored / "model.onnx").is_symlink()  # stored as a plain file
    with BundleRunner.open(stored) as runner:
        assert list(runner.predict({"features": FLOWERS})["label"]) == \
            ["setosa", "versicolor", "virginica"]


def test_tarred_bundle_registers(registry: Registry, models: Path, bundle: Path,
                                 tmp_path: Path) -> None:
    archive = tmp_path / "iris.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(bundle, arcname="iris-onnx")
    info = register_bundle(registry, models, archive)
    assert info.name == "iris-onnx" and Path(info.artifacts, "candidate.toml").is_file()


def test_a_bundle_whose_code_never_finishes_importing_is_refused_in_time(
        registry: Registry, models: Path, tmp_path: Path) -> None:
    """Its import ran on the registering request's thread with no limit: the request (and the
    client, and with the CLI the operator) waited for ever."""
    bundle = tmp_path / "iris"
    shutil.copytree(EXAMPLE, bundle)
    post = bundle / "post.py"
    post.write_text("import time\ntime.sleep(4)\n" + post.read_text())
    started = time.monotonic()
    refused(registry, models, bundle, r"loading the bundle took longer than 0.5 s",
            Limits(load_seconds=0.5))
    assert time.monotonic() - started < 2.5
