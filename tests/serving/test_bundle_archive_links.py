"""Archive links judged on the archive's names: a chain of links to long folder names passed
tarfile's "data" filter (its path resolution stops past PATH_MAX, CVE-2025-4517) and a member
written through it landed outside the bundle; two links naming each other were a 500."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

from serving.bundles import Limits, register_bundle
from serving.registry import Registry
from tests.support.bundles import EXAMPLE, refused

FOLDER = "d" * 247  # long names: the resolved path passes PATH_MAX (4096) after 16 of them
STEPS = "abcdefghijklmnop"


def _add(tar: tarfile.TarFile, name: str, kind: bytes = tarfile.REGTYPE, target: str = "",
         data: bytes = b"") -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, target, len(data)
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def _example(tar: tarfile.TarFile) -> None:
    for path in sorted(EXAMPLE.iterdir()):
        if path.is_file():
            _add(tar, path.name, data=path.read_bytes())


def test_links_through_long_folder_names_never_write_outside(registry: Registry, models: Path,
                                                             tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    archive = tmp_path / "escape.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        path = ""
        for step in STEPS:  # `a` is FOLDER, `a/b` is FOLDER/FOLDER, ...
            _add(tar, os.path.join(path, FOLDER), tarfile.DIRTYPE)
            _add(tar, os.path.join(path, step), tarfile.SYMTYPE, FOLDER)
            path = os.path.join(path, FOLDER)
        back = os.path.join("/".join(STEPS), "l" * 254)  # 17 names; it leads to the top
        _add(tar, back, tarfile.SYMTYPE, "../" * len(STEPS))
        # Read as names, 17 steps up from 17 names deep stays inside; as links, it is '/'.
        _add(tar, "escape", tarfile.SYMTYPE, back + "/.." * 17 + "/" + str(outside).lstrip("/"))
        _add(tar, "escape/written-outside", data=b"pwned\n")
        _example(tar)
    refused(registry, models, archive, r"^archive member 'a/b/c/.*' \(286 characters\) lies "
                                       r"under 'a', a link: put files in folders, not links$")
    assert list(outside.iterdir()) == []


def test_links_that_name_each_other_are_refused(registry: Registry, models: Path,
                                                tmp_path: Path) -> None:
    archive = tmp_path / "loop.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        _example(tar)
        _add(tar, "a", tarfile.SYMTYPE, "b")
        _add(tar, "b", tarfile.SYMTYPE, "a")
    refused(registry, models, archive,
            r"^archive member 'a' links to 'b' through the link 'b': link to a file itself$")
    folder = tmp_path / "iris"
    folder.mkdir()
    for path in EXAMPLE.iterdir():
        if path.is_file():
            (folder / path.name).write_bytes(path.read_bytes())
    (folder / "a").symlink_to("b")
    (folder / "b").symlink_to("a")
    refused(registry, models, folder, r"^bundle file '[ab]' is a link that leads round in a loop$")


def test_a_link_to_a_file_later_in_the_archive_registers(registry: Registry, models: Path,
                                                         tmp_path: Path) -> None:
    archive = tmp_path / "ok.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        _add(tar, "iris/model.onnx", tarfile.SYMTYPE, "./weights//v1.onnx")
        for path in sorted(EXAMPLE.iterdir()):
            if path.is_file() and path.name != "model.onnx":
                _add(tar, f"iris/{path.name}", data=path.read_bytes())
        _add(tar, "iris/weights/v1.onnx", data=(EXAMPLE / "model.onnx").read_bytes())
    info = register_bundle(registry, models, archive, Limits())
    assert (Path(info.artifacts) / "model.onnx").read_bytes() == \
        (EXAMPLE / "model.onnx").read_bytes()
