"""A key's prefix is 32 random bits and unique: a second key drawing a prefix already held
draws again instead of failing with the store's unique-constraint error."""

from __future__ import annotations

import pytest

from app import auth
from core.store.db import Database


def test_a_drawn_prefix_already_held_is_drawn_again(db: Database,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    draws = iter(["deadbeef", "deadbeef", "cafef00d"])
    monkeypatch.setattr(auth.secrets, "token_hex", lambda _n: next(draws))
    first = auth.create_key(db, ["predict"], name="one")
    second = auth.create_key(db, ["predict"], name="two")
    assert (first["prefix"], second["prefix"]) == ("deadbeef", "cafef00d")
    assert second["key"].startswith("abv_cafef00d_")
    assert [k["prefix"] for k in auth.list_keys(db)] == ["deadbeef", "cafef00d"]
