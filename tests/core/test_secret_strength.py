"""Production refuses a short ABVOC_SECRET_KEY: receipts are HMAC-SHA256(key, prediction id), so
one receipt let a predict-key holder guess the key 'a' offline and forge receipts and an admin
dashboard session (a security pass's finding). Development keeps working with any key."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ConfigError
from core.settings import Secret, ensure_secret_key, load_settings


@pytest.mark.parametrize("key", ["a", "prod-secret-1234", "x" * 31, "é" * 15])
def test_production_refuses_a_short_key_and_says_how_to_make_one(tmp_path: Path,
                                                                   key: str) -> None:
    env = {"ABVOC_DATA_DIR": str(tmp_path), "ABVOC_ENV": "production", "ABVOC_SECRET_KEY": key}
    with pytest.raises(ConfigError) as refused:
        load_settings(env=env)
    message = str(refused.value)
    assert "ABVOC_SECRET_KEY" in message and "32" in message
    assert "secrets.token_urlsafe(32)" in message
    assert len(key) < 3 or key not in message  # the key itself is never echoed


def test_a_short_key_in_the_config_file_is_refused_too(tmp_path: Path) -> None:
    config = tmp_path / "abvoc.toml"
    config.write_text('env = "production"\nsecret_key = "short"\n')
    with pytest.raises(ConfigError, match="too short"):
        load_settings(env={"ABVOC_DATA_DIR": str(tmp_path)}, config_file=config)


def test_a_32_byte_key_serves_production(tmp_path: Path) -> None:
    key = "k" * 32
    env = {"ABVOC_DATA_DIR": str(tmp_path), "ABVOC_ENV": "production", "ABVOC_SECRET_KEY": key}
    assert ensure_secret_key(load_settings(env=env)).secret_key == Secret(key)


def test_development_keeps_any_key_and_the_generated_one_is_strong(tmp_path: Path) -> None:
    dev = {"ABVOC_DATA_DIR": str(tmp_path)}
    assert load_settings(env={**dev, "ABVOC_SECRET_KEY": "a"}).secret_key == Secret("a")
    made = ensure_secret_key(load_settings(env=dev)).secret_key  # what `abvoc up` makes
    assert made is not None
    prod = {**dev, "ABVOC_ENV": "production", "ABVOC_SECRET_KEY": made.reveal()}
    assert load_settings(env=prod).secret_key == made
