"""The series colours the pages' plotly figures and the report's matplotlib ones share."""

from __future__ import annotations

from plotly.colors import qualitative

COLORS = tuple(dict.fromkeys(c.lower() for c in (*qualitative.D3, *qualitative.Dark24)))
"""D3's ten (the first seven as the pages had), then Dark24's, so each series of a page gets its
own (an experiment has up to 20 arms; Operations draws every serving candidate): seven colours
gave two candidates one."""
