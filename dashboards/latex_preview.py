"""A LaTeX label rendered server-side, so an annotator sees the formula they typed.

abvoc's own validator (:func:`core.latex.validate_latex`) decides first, since it is what the
label will be checked against; matplotlib's mathtext then draws it to a PNG. A string either
refuses is reported as a message, never as a broken image (nor a failed callback that
leaves the previous formula's picture on screen).
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

from matplotlib import mathtext

from core.latex import validate_latex

MAX_CHARS = 500
DPI = 160


@dataclass(frozen=True)
class Preview:
    """Either ``src`` (a PNG data URI) or ``problem`` (why there is no picture)."""

    src: str | None = None
    problem: str | None = None


def render(latex: str | None) -> Preview:
    """The formula as a PNG data URI, or the reason it cannot be drawn."""
    text = (latex or "").strip()
    if not text:
        return Preview(problem="Type a formula to see it rendered.")
    if len(text) > MAX_CHARS:
        return Preview(problem=f"Too long to preview (over {MAX_CHARS} characters).")
    problems = validate_latex(text)
    if problems:
        return Preview(problem="Not valid LaTeX: " + "; ".join(problems))
    out = io.BytesIO()
    try:
        mathtext.math_to_image(f"${text}$", out, dpi=DPI, format="png")
    except RecursionError:
        # mathtext's parser recurses per nesting level: ~40 braces deep, which abvoc's
        # validator allows, exhausts Python's stack.
        return Preview(problem="The formula does not render: it is nested too deeply.")
    except Exception as exc:  # noqa: BLE001 - any parse failure is the formula's, not a 500
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unknown error"
        return Preview(problem=f"The formula does not render: {first}")
    return Preview(src="data:image/png;base64," + base64.b64encode(out.getvalue()).decode())
