"""Checking at registration that the declared output type can be read from what the last stage
gives, where its artifact states its outputs' datatypes and shapes (an ONNX file).

serving.outputs reads one item's answer from the last stage's tensors: a label from one class
name, one score per class or one class index; a number from one numeric value; text and LaTeX
from one string. A bundle whose last ONNX stage gives none of these (three class scores for two
declared classes, a score vector for a `number`) was registered and then failed every request.
The check refuses only what no item could be read from: a size the file leaves open may fit.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from serving.bundles.manifest import Manifest, ManifestError
from serving.bundles.stages import InputInfo, LoadedStage

_INTEGERS = ("INT", "UINT")


def check_answer_readable(manifest: Manifest, last: LoadedStage) -> None:
    """Refuse the manifest when no output of `last` can hold one item's answer of its type."""
    kind = manifest.output
    if last.gives is None or kind.type not in ("label", "number", "text", "latex"):
        return  # a Python stage's outputs are known only when it runs; JSON reads any tensor
    n = len(kind.classes)
    fits = {
        "label": lambda d, s: (d == "BYTES" and s(1)) or (d.startswith("FP") and s(n))
        or (d.startswith(_INTEGERS) and s(1)),
        "number": lambda d, s: (d.startswith("FP") or d.startswith(_INTEGERS)) and s(1),
    }.get(kind.type, lambda d, s: d == "BYTES" and s(1))
    if any(fits(info.datatype or "", _sizes(info)) for info in last.gives
           if info.name != "confidence"):
        return
    needs = {"label": f"one class name (BYTES), {n} class scores (FP) or one class index (INT)",
             "number": "one numeric value"}.get(kind.type, "one string (BYTES)")
    gives = ", ".join(f"{i.name!r} {i.datatype} {_shown(i.shape)}" for i in last.gives)
    raise ManifestError(f"output.type {kind.type!r}: the last stage {last.name!r} gives {gives}, "
                        f"from which no answer can be read (an item's answer is {needs}); "
                        "every request would fail: fix [output] or add a stage that makes the "
                        "answer")


def _sizes(info: InputInfo) -> Callable[[int], bool]:
    """Whether an item of this output may hold `count` values: the first axis is the batch's
    (or, where the stage gives no batch axis, part of the item), and an open size may be any."""
    if info.shape is None or None in info.shape[1:]:
        return lambda count: True
    whole = None if None in info.shape else math.prod(info.shape)
    return lambda count: count in (math.prod(info.shape[1:]), whole)


def _shown(shape: tuple[int | None, ...] | None) -> str:
    return "[?]" if shape is None else "[" + ", ".join("-1" if d is None else str(d)
                                                       for d in shape) + "]"
