"""Config-file keys follow the README's rule, and ABVOC_ENV takes only the values it documents
(a typo such as `prod` used to turn the production safeguards off silently)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ConfigError
from core.settings import load_settings

KEY = "a-production-key-of-at-least-32-bytes"  # production refuses shorter keys


def _load(tmp_path: Path, toml: str, **env: str) -> object:
    config = tmp_path / "abvoc.toml"
    config.write_text(toml)
    return load_settings(env={"ABVOC_DATA_DIR": str(tmp_path), **env}, config_file=config)


def test_config_file_keys_are_the_lower_case_names_without_the_prefix(tmp_path: Path) -> None:
    settings = _load(tmp_path, 'bus_url = "kafka://127.0.0.1:9092"\nenv = "production"\n'
                               f'secret_key = "{KEY}"\n')
    assert str(settings.bus) == "kafka://127.0.0.1:9092" and settings.production


def test_the_older_keys_still_work(tmp_path: Path) -> None:
    settings = _load(tmp_path, 'bus = "kafka://127.0.0.1:9092"\nenvironment = "production"\n'
                               f'secret_key = "{KEY}"\n')
    assert str(settings.bus) == "kafka://127.0.0.1:9092" and settings.production


def test_an_unknown_key_is_refused_with_the_valid_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        _load(tmp_path, 'bus_uri = "embedded://"\n')
    message = str(refused.value)
    assert "bus_uri" in message
    for key in ("bus_url", "env", "database_url", "data_dir", "input_retention_hours"):
        assert key in message


def test_a_setting_given_under_both_names_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="both"):
        _load(tmp_path, 'bus_url = "embedded://"\nbus = "kafka://127.0.0.1:9092"\n')


@pytest.mark.parametrize("value", ["prod", "staging", "test", "Production "])
def test_abvoc_env_takes_only_development_or_production(tmp_path: Path, value: str) -> None:
    env = {"ABVOC_DATA_DIR": str(tmp_path), "ABVOC_ENV": value, "ABVOC_SECRET_KEY": KEY}
    if value.strip().lower() == "production":
        assert load_settings(env=env).production
        return
    with pytest.raises(ConfigError) as refused:
        load_settings(env=env)
    message = str(refused.value)
    assert "ABVOC_ENV" in message and "development" in message and "production" in message
    assert repr(value) in message


def test_env_in_the_config_file_is_checked_too(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ABVOC_ENV"):
        _load(tmp_path, 'env = "prod"\n')
    assert _load(tmp_path, 'env = "development"\n').environment == "development"
