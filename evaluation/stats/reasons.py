"""Why a comparison could not be computed.

Degenerate data (an empty arm, zero variance) is normal in a live experiment: the first hour of a
new slice has no rows yet. The statistics functions therefore never raise on such data; they return
a result whose ``error`` field carries one of the messages below. The vectorised kernels carry an
integer code per comparison instead, which keeps them free of Python loops.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Reason(IntEnum):
    """Integer code of a degenerate-data reason; ``OK`` means the result is valid."""

    OK = 0
    CONTROL_EMPTY = 1
    TREATMENT_EMPTY = 2
    CONTROL_TOO_FEW = 3
    TREATMENT_TOO_FEW = 4
    NO_VARIANCE = 5
    ALL_TIED = 6
    CONTROL_ZERO = 7


_MESSAGES: dict[Reason, str | None] = {
    Reason.OK: None,
    Reason.CONTROL_EMPTY: "control has no observations",
    Reason.TREATMENT_EMPTY: "treatment has no observations",
    Reason.CONTROL_TOO_FEW: "control needs at least two observations to estimate a variance",
    Reason.TREATMENT_TOO_FEW: "treatment needs at least two observations to estimate a variance",
    Reason.NO_VARIANCE: "both arms have zero variance (every observation is the same)",
    Reason.ALL_TIED: "all observations are tied, so there is nothing to rank",
    Reason.CONTROL_ZERO: "the control mean is zero, so there is no relative lift",
}

# Indexed by code, so that ``_MESSAGE_TABLE[codes]`` maps a whole array at once.
_MESSAGE_TABLE = np.array([_MESSAGES[Reason(i)] for i in range(len(Reason))], dtype=object)


def message(code: int) -> str | None:
    """Return the message for one code (``None`` for ``Reason.OK``)."""
    return _MESSAGES[Reason(int(code))]


def messages(codes: np.ndarray) -> np.ndarray:
    """Map an integer array of codes to an object array of messages (``None`` where OK)."""
    return _MESSAGE_TABLE[np.asarray(codes, dtype=np.intp)]


def first_reason(conditions: list[tuple[np.ndarray, Reason]]) -> np.ndarray:
    """Code of the first condition that holds, element-wise; ``Reason.OK`` where none holds.

    The order of ``conditions`` is the order of priority: an empty control is reported before a
    zero variance that follows from it.
    """
    if not conditions:
        raise ValueError("at least one condition is needed")
    masks = [np.asarray(mask, dtype=bool) for mask, _ in conditions]
    shape = np.broadcast_shapes(*(m.shape for m in masks))
    masks = [np.broadcast_to(m, shape) for m in masks]
    return np.select(masks, [int(code) for _, code in conditions], default=int(Reason.OK)).astype(
        np.int8
    )
