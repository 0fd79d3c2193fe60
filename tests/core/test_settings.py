"""Configuration: defaults, overrides, masking, and clear failures naming the variable."""

from __future__ import annotations

import pytest

from core.errors import ConfigError
from core.settings import BusURL, Secret, load_settings


def test_embedded_defaults(tmp_path) -> None:  # noqa: ANN001
    s = load_settings(env={"ABVOC_DATA_DIR": str(tmp_path)})
    assert s.database_url == f"sqlite:///{tmp_path / 'abvoc.db'}"
    assert s.bus == BusURL("embedded")
    assert s.models_dir == tmp_path / "models"


def test_kafka_url_with_several_brokers() -> None:
    s = load_settings(env={"ABVOC_BUS_URL": "kafka://a:9092,127.0.0.1:19092"})
    assert s.bus.kind == "kafka"
    assert s.bus.brokers == ("a:9092", "127.0.0.1:19092")


def test_postgres_url_gets_the_psycopg_driver() -> None:
    s = load_settings(env={"ABVOC_DATABASE_URL": "postgresql://u:pw@h:5432/db"})
    assert s.database_url.startswith("postgresql+psycopg://u:pw@h:5432/db")


def test_secrets_never_print() -> None:
    s = load_settings(
        env={"ABVOC_DATABASE_URL": "postgresql://u:hunter2@h/db", "ABVOC_SECRET_KEY": "s3cr3t"}
    )
    described = s.describe()
    assert "hunter2" not in str(described) and "s3cr3t" not in str(described)
    assert "s3cr3t" not in repr(s)
    assert repr(Secret("x")) == "Secret('****')"


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"ABVOC_BUS_URL": "kafka://nohostport"}, "ABVOC_BUS_URL"),
        ({"ABVOC_BUS_URL": "rabbit://h:1"}, "ABVOC_BUS_URL"),
        ({"ABVOC_BUS_URL": "kafka://h:99999"}, "ABVOC_BUS_URL"),
        ({"ABVOC_DATABASE_URL": "not a url"}, "ABVOC_DATABASE_URL"),
        ({"ABVOC_DATABASE_URL": "mysql://u@h/db"}, "ABVOC_DATABASE_URL"),
        ({"ABVOC_BUS_PARTITIONS": "zero"}, "ABVOC_BUS_PARTITIONS"),
    ],
)
def test_malformed_values_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        load_settings(env=env)


def test_config_file_is_overlaid_by_environment(tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "abvoc.toml"
    path.write_text('topic_prefix = "fromfile"\nbus_partitions = 5\n')
    s = load_settings(env={"ABVOC_CONFIG": str(path), "ABVOC_BUS_PARTITIONS": "2"})
    assert (s.topic_prefix, s.bus_partitions) == ("fromfile", 2)
    path.write_text("nonsense = 1\n")
    with pytest.raises(ConfigError, match="unknown keys"):
        load_settings(env={"ABVOC_CONFIG": str(path)})
