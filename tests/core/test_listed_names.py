"""How a message lists names (allowed values, a request's unknown fields): quoted as typed,
each long one cut, and past a bound the rest counted, so a body of 10,000 unknown fields gets a
short 400 that still names the first of them and the fields allowed."""

from __future__ import annotations

import pytest

from core.errors import AbvocError, refuse_unknown
from core.text import SHOWN_CHARS, quoted_names


def test_names_are_quoted_as_typed() -> None:
    assert quoted_names(["skip", "zero"]) == "'skip', 'zero'"
    assert quoted_names(["it's", "a\\b"]) == "'it's', 'a\\b'"  # no repr escapes
    assert quoted_names([]) == ""


def test_a_long_list_is_cut_and_counted() -> None:
    names = [f"field-{i:05d}" for i in range(10_000)]
    listed = quoted_names(names)
    assert listed.startswith("'field-00000', 'field-00001'")
    kept = listed.count("'field-")
    assert listed.endswith(f" and {10_000 - kept:,} more") and len(listed) <= 4 * SHOWN_CHARS + 20


def test_a_long_name_is_cut_with_its_size() -> None:
    listed = quoted_names(["x" * 5_000])
    assert "(5000 characters)" in listed and len(listed) < 2 * SHOWN_CHARS


def test_unknown_fields_are_refused_naming_them_and_the_allowed() -> None:
    refuse_unknown({"metric": 1}, {"metric", "value"})  # nothing unknown: no error
    with pytest.raises(AbvocError) as refused:
        refuse_unknown({f"k{i}": i for i in range(10_000)} | {"metric": 1}, {"metric", "value"})
    message = refused.value.message
    assert refused.value.status == 400
    assert message.startswith("unknown field(s) 'k0', 'k1', ") and "more; allowed: " in message
    assert message.endswith("allowed: 'metric', 'value'") and len(message) < 600
