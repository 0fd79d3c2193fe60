"""`abvoc dataset split-pages`: scanned pages cut into single-formula images with a manifest.

Each PNG or JPEG page in the folder goes through a registered extraction candidate; every box it
finds becomes a formula image (cleaned of ruled lines, padded as the OCR takes it), kept as a
PNG for people and a .npy array for the offline test, and one JSONL line in the form
`abvoc offline-test --dataset` reads — the label null (unlabeled: the offline test refuses it
until annotators fill it in), and `source` holding
the page, the box, its score and the extraction candidate's name and version. A file that is not
a readable image is reported and skipped. Everything is written to a hidden folder beside the
output and renamed into place at the end, so an interrupted run leaves no half-written dataset.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from core.errors import AbvocError
from core.grayscale import gray_pixels
from workloads.ocr.pages.clean import binarize, clean_image, crop
from workloads.ocr.pages.offline import loaded

SUFFIXES = (".png", ".jpg", ".jpeg")
MAX_PIXELS = 50_000_000  # a 600 dpi A4 scan is 35 Mpixel
MANIFEST = "manifest.jsonl"
SLICE = "split-pages"
Progress = Callable[[int, int, str], None]


@dataclass
class SplitSummary:
    pages: int = 0
    formulas: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    out: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"pages": self.pages, "formulas": self.formulas, "skipped": self.skipped,
                "out": self.out}


def read_page(path: Path) -> np.ndarray:
    """A page as grayscale uint8, or an AbvocError saying why it cannot be read."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=("PNG", "JPEG")) as image:
                w, h = image.size
                if w * h > MAX_PIXELS:
                    raise AbvocError(f"{w}x{h} pixels is over the {MAX_PIXELS} pixel limit")
                return gray_pixels(image)
    except UnidentifiedImageError as exc:
        raise AbvocError("not a PNG or JPEG image") from exc
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise AbvocError("declares too many pixels") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise AbvocError("damaged or truncated image data") from exc


def page_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise AbvocError(f"{folder} is not a folder: give a folder of PNG or JPEG pages")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
    if not files:  # an empty dataset helps nobody: say so before writing anything
        raise AbvocError(f"{folder} holds no PNG or JPEG pages (files ending in "
                         f"{', '.join(SUFFIXES)}): give the folder of scanned pages")
    return files


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise AbvocError(f"{out} already exists and is not an empty folder; give a new --out")
    if not out.parent.is_dir():
        raise AbvocError(f"{out.parent} does not exist; create it or give another --out")


def _file_bases(files: list[Path]) -> dict[Path, str]:
    """Each page's file names' base: its stem, unless two pages share one (p.png and p.jpg,
    whose formulas overwrote each other's files, both pages' lines pointing at one's crops)."""
    stems, used, out = Counter(p.stem for p in files), set(), {}
    for path in files:
        base = path.stem if stems[path.stem] == 1 else path.name.replace(".", "-")
        while base in used:
            base += "_"
        used.add(base)
        out[path] = base
    return out


def split_pages(folder: Path, out: Path, extractor: Path, name: str, version: str,
                min_score: float = 0.0, progress: Progress | None = None) -> SplitSummary:
    """Cut every page in `folder` with the extraction bundle at `extractor` into `out`."""
    folder, out = Path(folder), Path(out)
    files = page_files(folder)
    _check_out(out)
    summary = SplitSummary(out=str(out))
    bases = _file_bases(files)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (work / "images").mkdir()
        (work / "arrays").mkdir()
        lines: list[str] = []
        with loaded(extractor) as (_manifest, pipe):
            for done, path in enumerate(files, 1):
                try:
                    page = read_page(path)
                except AbvocError as exc:
                    summary.skipped.append({"file": path.name, "reason": exc.message})
                    if progress:
                        progress(done, len(files), f"skipped {path.name}: {exc.message}")
                    continue
                answer = pipe.predict([page])[0]
                clean = _clean(page)
                for k, item in enumerate(b for b in answer.output if b["score"] >= min_score):
                    stem = f"{bases[path]}-{k:03d}"
                    image = crop(clean, tuple(item["box"]))
                    Image.fromarray(image).save(work / "images" / f"{stem}.png")
                    np.save(work / "arrays" / f"{stem}.npy", image)
                    lines.append(json.dumps({
                        "id": f"{path.name}#{k}", "inputs": {"image": f"arrays/{stem}.npy"},
                        "label": None, "slice": SLICE,
                        "source": {"page": path.name, "box": item["box"], "score": item["score"],
                                   "extractor": name, "version": version,
                                   "image": f"images/{stem}.png"}}))
                summary.pages += 1
                summary.formulas = len(lines)
                if progress:
                    progress(done, len(files), path.name)
        if not summary.pages:  # every page was skipped: no dataset, and no folder left behind
            reasons = "; ".join(f"{s['file']}: {s['reason']}" for s in summary.skipped[:5])
            raise AbvocError(f"none of the {len(files)} pages in {folder} could be read "
                             f"({reasons}): give readable PNG or JPEG pages")
        (work / MANIFEST).write_text("".join(line + "\n" for line in lines))
        (work / "skipped.json").write_text(json.dumps(summary.skipped, indent=1))
        if out.exists():
            out.rmdir()  # checked empty above
        work.rename(out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return summary


def _clean(page: np.ndarray) -> np.ndarray:
    """The page with its ruled lines and off-ink pixels turned to paper, at its own size."""
    return clean_image(page, binarize(page))
