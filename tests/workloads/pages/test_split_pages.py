"""`abvoc dataset split-pages`: pages cut into formula images with a manifest the offline test
reads; unreadable files reported and skipped; nothing half-written when a run fails."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from app.cli import main
from core.errors import AbvocError
from core.settings import Settings
from core.store import Database, schema
from serving.bundles.manifest import parse_manifest
from serving.bundles.offline import read_dataset
from serving.bundles.offline_metrics import OfflineError
from serving.registry import Registry
from workloads.ocr.bundle import register_trained
from workloads.ocr.pages import split
from workloads.ocr.pages.generator import generate_pages


@pytest.fixture(scope="module")
def scans(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("scans")
    pages = generate_pages(2, seed=9, split="offline-test")
    Image.fromarray(pages[0].image).save(folder / "a-page.png")
    Image.fromarray(pages[1].image).convert("RGB").save(folder / "b-page.jpg", quality=92)
    (folder / "c-broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (folder / "notes.txt").write_text("not a page")
    return folder


def test_pages_cut_into_a_dataset(scans: Path, extractors: dict[str, Path],
                                  tmp_path: Path) -> None:
    out = tmp_path / "cut"
    seen: list[str] = []
    summary = split.split_pages(scans, out, extractors["pages-xycut"], "pages-xycut", "1+x",
                                progress=lambda d, t, what: seen.append(f"{d}/{t} {what}"))
    assert summary.pages == 2 and summary.formulas > 10
    assert summary.skipped == [{"file": "c-broken.png", "reason": "damaged or truncated image "
                                                                  "data"}]
    assert seen[-1].startswith("3/3") and any("skipped c-broken.png" in s for s in seen)
    lines = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(lines) == summary.formulas
    first = lines[0]
    assert first["source"]["page"] == "a-page.png" and first["source"]["extractor"] == \
        "pages-xycut" and first["source"]["version"] == "1+x" and len(first["source"]["box"]) == 4
    array = np.load(out / first["inputs"]["image"])
    assert array.dtype == np.uint8 and array.shape[0] >= 32
    assert np.array_equal(np.asarray(Image.open(out / first["source"]["image"])), array)
    assert json.loads((out / "skipped.json").read_text())[0]["file"] == "c-broken.png"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_the_manifest_is_what_the_offline_test_reads(scans: Path, extractors: dict[str, Path],
                                                     tmp_path: Path) -> None:
    out = tmp_path / "cut"
    summary = split.split_pages(scans, out, extractors["pages-xycut"], "pages-xycut", "1")
    # A LaTeX candidate taking one grayscale image per example (batch axis first).
    manifest = parse_manifest({
        "name": "reader", "version": "1", "backend": "onnxruntime",
        "inputs": [{"name": "image", "datatype": "UINT8", "shape": [-1, -1, -1]}],
        "output": {"type": "latex"}, "stages": [{"name": "m", "kind": "onnx", "path": "m.onnx"}]})
    assert summary.formulas > 0
    # Unlabeled as written: the offline test refuses it, naming the line and what to do.
    with pytest.raises(OfflineError, match="manifest.jsonl line 1: the example is not labeled "
                                           r"\(null\): label it first"):
        read_dataset(out / "manifest.jsonl", manifest)
    lines = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    assert all(line["label"] is None and line["slice"] == "split-pages" for line in lines)
    labeled = out / "labeled.jsonl"  # once annotators fill the labels in, it reads
    labeled.write_text("".join(json.dumps({**line, "label": "x^{2}"}) + "\n" for line in lines))
    examples = read_dataset(labeled, manifest)
    assert len(examples) == summary.formulas
    assert examples[0].inputs["image"].shape[0] == 1 and examples[0].inputs["image"].ndim == 3


def test_a_failed_run_leaves_nothing(scans: Path, extractors: dict[str, Path], tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    real = split.crop

    def failing(image, box):  # noqa: ANN001, ANN202 - the second page's crops fail
        calls["n"] += 1
        if calls["n"] > 20:
            raise OSError("disk full")
        return real(image, box)

    monkeypatch.setattr(split, "crop", failing)
    with pytest.raises(OSError, match="disk full"):
        split.split_pages(scans, tmp_path / "cut", extractors["pages-xycut"], "pages-xycut", "1")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("keep me")
    with pytest.raises(AbvocError, match="already exists"):
        split.split_pages(scans, tmp_path / "taken", extractors["pages-xycut"], "pages-xycut",
                          "1")
    assert (tmp_path / "taken" / "x").read_text() == "keep me"


def test_the_command(scans: Path, extractors: dict[str, Path], settings: Settings,
                     monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with Database(settings.database_url) as db:
        schema.upgrade(db)
        register_trained(Registry(db), settings.models_dir, extractors["pages-xycut"])
    monkeypatch.setenv("ABVOC_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("ABVOC_DATABASE_URL", settings.database_url)
    out = tmp_path / "cut"
    result = CliRunner().invoke(main, ["dataset", "split-pages", str(scans), "--out", str(out),
                                       "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["pages"] == 2 and summary["skipped"][0]["file"] == "c-broken.png"
    line = json.loads((out / "manifest.jsonl").read_text().splitlines()[0])
    with Database(settings.database_url) as db:
        version = Registry(db).get("pages-xycut").version
    assert line["source"]["version"] == version
    missing = CliRunner().invoke(main, ["dataset", "split-pages", str(scans), "--out",
                                        str(tmp_path / "other"), "--candidate", "nope"])
    assert missing.exit_code != 0 and "not registered" in missing.output


def test_two_pages_of_one_stem_keep_their_own_formulas(extractors: dict[str, Path],
                                                       tmp_path: Path) -> None:
    """p.png and p.jpg wrote their formulas to the same p-000… files: both pages' lines
    pointed at one page's crops."""
    folder = tmp_path / "scans"
    folder.mkdir()
    pages = generate_pages(2, seed=9, split="offline-test")
    Image.fromarray(pages[0].image).save(folder / "p.png")
    Image.fromarray(pages[1].image).convert("RGB").save(folder / "p.jpg", quality=92)
    summary = split.split_pages(folder, tmp_path / "cut", extractors["pages-xycut"],
                                "pages-xycut", "1+x")
    lines = [json.loads(x) for x in (tmp_path / "cut" / "manifest.jsonl").read_text()
             .splitlines()]
    files = {line["inputs"]["image"] for line in lines}
    assert len(files) == len(lines) == summary.formulas  # one file per formula
    assert {line["source"]["page"] for line in lines} == {"p.png", "p.jpg"}
    assert all(line["inputs"]["image"].startswith("arrays/p-" + line["source"]["page"][2:])
               for line in lines)


def test_a_16_bit_or_transparent_page_reads_as_the_8_bit_page(tmp_path: Path) -> None:
    """split-pages reads pages as /v1/pages does: 16-bit gray was clipped to a white page and
    black ink on clear paper read as a black page (Pillow's convert("L"))."""
    page = generate_pages(1, seed=9, split="offline-test")[0].image
    Image.fromarray(page.astype(np.uint16) * 257).save(tmp_path / "deep.png")
    clear = np.zeros_like(page)
    Image.fromarray(np.stack([clear, 255 - page], axis=-1), mode="LA").save(tmp_path / "la.png")
    for name in ("deep.png", "la.png"):
        assert np.array_equal(split.read_page(tmp_path / name), page), name
