"""The argparse type of the benchmarks' counts (rows, runs, rounds, images ...): a whole number
of 1 or more, refused at the command line (exit 2, one line) rather than after minutes of work
in a traceback (no median of zero runs, a rate over zero events)."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """`text` as an int of 1 or more, or an ArgumentTypeError argparse prints as one line."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes a whole number; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"takes 1 or more; got {value}")
    return value
