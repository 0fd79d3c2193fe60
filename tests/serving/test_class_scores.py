"""A label read from a few class scores (Python floats) picks the same class, the same share and
refuses the same scores as numpy's reductions over more of them."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.output_types import OutputKind
from serving import outputs
from serving.outputs import CandidateOutputError, read_answer

SCORES = st.lists(st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.floats(min_value=0, max_value=1, width=32),
    st.sampled_from([0.0, -0.0, 1.0, 0.5, 0.25, 1 / 3, float("-inf")]),
), min_size=1, max_size=outputs._FEW_SCORES)


def _read(scores: list[float], dtype: str) -> tuple[str, float | None] | str:
    kind = OutputKind("label", tuple(f"c{i}" for i in range(len(scores))))
    with np.errstate(over="ignore"):  # past float16's range: infinity, refused or not top
        tensor = np.array([scores], np.float64).astype(dtype)
    try:
        return read_answer(kind, {"probabilities": tensor})
    except CandidateOutputError as exc:
        return f"refused: {exc.message}"


@settings(max_examples=400, deadline=None)
@given(scores=SCORES, dtype=st.sampled_from(["float16", "float32", "float64"]))
def test_few_scores_read_as_numpy_reads_them(scores: list[float], dtype: str) -> None:
    quick = _read(scores, dtype)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(outputs, "_FEW_SCORES", 0)  # every score through numpy
        full = _read(scores, dtype)
    assert quick == full


def test_ties_pick_the_first_class_and_a_sum_of_one_gives_the_share() -> None:
    kind = OutputKind("label", ("a", "b", "c"))
    assert read_answer(kind, {"p": np.array([[0.25, 0.5, 0.25]], np.float32)}) == ("b", 0.5)
    assert read_answer(kind, {"p": np.array([[0.4, 0.4, 0.2]], np.float32)})[0] == "a"
    assert read_answer(kind, {"p": np.array([[2.0, 1.0, 0.5]])}) == ("a", None)
    with pytest.raises(CandidateOutputError, match="not finite"):
        read_answer(kind, {"p": np.array([[0.1, np.nan, 0.2]])})
    with pytest.raises(CandidateOutputError, match="not finite"):
        read_answer(kind, {"p": np.array([[-np.inf, -np.inf, -np.inf]])})
