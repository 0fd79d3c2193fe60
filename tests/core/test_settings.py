"""Configuration: defaults, overrides, masking, and clear failures naming the variable."""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import replace

import pytest

from core.bus_url import BusURL
from core.errors import ConfigError
from core.settings import Secret, ensure_secret_key, load_settings, mask_url


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


@pytest.mark.parametrize(("env", "said"), [
    # Another PostgreSQL driver passed, then every command ended in a 55-line traceback.
    ({"ABVOC_DATABASE_URL": "postgresql+psycopg2://u@h/db"},
     r"ABVOC_DATABASE_URL uses the driver 'postgresql\+psycopg2'; abvoc ships psycopg 3"),
    ({"ABVOC_DATABASE_URL": "postgresql+asyncpg://u@h/db"}, r"driver 'postgresql\+asyncpg'"),
    # A query (TLS settings, say) was dropped without a word, and abvoc spoke plaintext.
    ({"ABVOC_BUS_URL": "kafka://h:9093?security.protocol=SSL"},
     r"ABVOC_BUS_URL=.* has a path, query or fragment, which abvoc would not use"),
    ({"ABVOC_BUS_URL": "kafka://h:9093/cluster"}, r"has a path, query or fragment"),
    # A token from a secret file kept its newline: every scrape was a 401.
    ({"ABVOC_METRICS_TOKEN": "s3cr3t-token\n"},
     r"ABVOC_METRICS_TOKEN .* starts or ends with blanks or a line break"),
])
def test_settings_abvoc_would_misread_are_refused_saying_why(env: dict[str, str],
                                                             said: str) -> None:
    with pytest.raises(ConfigError, match=said) as info:
        load_settings(env=env)
    assert "s3cr3t" not in str(info.value)
    assert load_settings(env={"ABVOC_BUS_URL": "kafka://h:9093/"}).bus.brokers == ("h:9093",)


def test_config_file_is_overlaid_by_environment(tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "abvoc.toml"
    path.write_text('topic_prefix = "fromfile"\nbus_partitions = 5\n')
    s = load_settings(env={"ABVOC_CONFIG": str(path), "ABVOC_BUS_PARTITIONS": "2"})
    assert (s.topic_prefix, s.bus_partitions) == ("fromfile", 2)
    path.write_text("nonsense = 1\n")
    with pytest.raises(ConfigError, match="unknown keys"):
        load_settings(env={"ABVOC_CONFIG": str(path)})
    # Given by --config, the file is not said to come from ABVOC_CONFIG alone.
    with pytest.raises(ConfigError, match=r"the config file '.*abvoc.toml' \(--config or "
                                          r"ABVOC_CONFIG\) has unknown keys"):
        load_settings(env={}, config_file=path)


def test_expected_parts_from_the_environment_or_the_config_file(tmp_path) -> None:  # noqa: ANN001
    assert load_settings(env={}).expect_parts == ()
    s = load_settings(env={"ABVOC_EXPECT_PARTS": " relay, worker,,relay"})
    assert s.expect_parts == ("relay", "worker")
    path = tmp_path / "abvoc.toml"
    path.write_text('expect_parts = ["worker", "consumer:evaluation"]\n')
    assert load_settings(env={"ABVOC_CONFIG": str(path)}).expect_parts == (
        "worker", "consumer:evaluation")
    for bad in ("relay;drop", "Worker", "x" * 51):
        with pytest.raises(ConfigError, match="ABVOC_EXPECT_PARTS .* not a part name"):
            load_settings(env={"ABVOC_EXPECT_PARTS": bad})
    # A name no part beats under (a typo) would keep /readyz down for good.
    for typo in ("wroker", "relay,consumer", "consumers:x"):
        with pytest.raises(ConfigError, match="ABVOC_EXPECT_PARTS .* which no part of abvoc is "
                                              "called: the parts are relay, worker"):
            load_settings(env={"ABVOC_EXPECT_PARTS": typo})
    path.write_text("expect_parts = 3\n")
    with pytest.raises(ConfigError, match="must be part names separated by commas"):
        load_settings(env={"ABVOC_CONFIG": str(path)})


def test_secret_never_prints_through_str_format_or_logging(
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = Secret("s3cr3t")
    shown = [str(secret), f"{secret}", f"{secret!s}", f"{secret:>10}", "%s" % secret,  # noqa: UP031
             "{}".format(secret),  # noqa: UP032
             repr(secret), str([secret]), str({"k": secret})]
    with caplog.at_level(logging.INFO):
        logging.getLogger("abvoc.test").info("key %s %r %s", secret, secret, secret)
    assert not any("s3cr3t" in text for text in [*shown, caplog.text])
    assert secret.reveal() == "s3cr3t" and not isinstance(secret, str)
    assert Secret("a") == Secret("a") != Secret("b")


@pytest.mark.parametrize("url", [
    "postgresql://u:hunter2@h:notaport/db",  # the parser raises ValueError
    "postgres ql://u:hunter2@h/db",  # does not parse at all
    "postgresql://u:hunter2@[::1/db",
])
def test_unparseable_database_url_never_echoes_its_password(url: str) -> None:
    assert "hunter2" not in mask_url(url)
    with pytest.raises(ConfigError, match="ABVOC_DATABASE_URL") as info:
        load_settings(env={"ABVOC_DATABASE_URL": url})
    assert "hunter2" not in str(info.value) and "hunter2" not in info.value.message


def test_a_password_given_as_a_query_parameter_is_masked_too() -> None:
    """libpq takes `password` (and `sslpassword`) from the URL's query as from its user part:
    `abvoc config` and the start-up errors print neither."""
    url = "postgresql://u@127.0.0.1:1/db?password=hunter2&sslmode=require&sslpassword=hunter3"
    shown = mask_url(url)
    assert "hunter2" not in shown and "hunter3" not in shown and "sslmode=require" in shown
    settings = load_settings(env={"ABVOC_DATABASE_URL": url})
    assert "hunter" not in str(settings.describe()["database_url"])


def test_no_public_default_key(tmp_path) -> None:  # noqa: ANN001
    s = load_settings(env={"ABVOC_DATA_DIR": str(tmp_path)})
    assert s.secret_key is None
    key_file = tmp_path / "secret_key"
    assert s.describe()["secret_key"] == f"(unset: made at the first start in {key_file})"
    ensure_secret_key(s)  # what every service does at start
    assert s.describe()["secret_key"] == f"(unset: kept in {key_file})"
    production = load_settings(env={"ABVOC_DATA_DIR": str(tmp_path), "ABVOC_ENV": "production",
                                    "ABVOC_SECRET_KEY": "k" * 32})
    assert replace(production, secret_key=None).describe()["secret_key"] == (
        "(unset: production needs ABVOC_SECRET_KEY)")


def test_a_fresh_data_folder_gets_a_private_random_key_kept_across_starts(tmp_path) -> None:  # noqa: ANN001
    env = {"ABVOC_DATA_DIR": str(tmp_path / "data")}
    first = ensure_secret_key(load_settings(env=env))
    path = tmp_path / "data" / "secret_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first.secret_key.reveal()) >= 32
    # The next start (and every other command on that folder) reads the same key.
    assert load_settings(env=env).secret_key == first.secret_key
    assert ensure_secret_key(load_settings(env=env)).secret_key == first.secret_key
    other = ensure_secret_key(load_settings(env={"ABVOC_DATA_DIR": str(tmp_path / "other")}))
    assert other.secret_key != first.secret_key
    # A key set in the environment wins over the file.
    assert load_settings(env={**env, "ABVOC_SECRET_KEY": "k"}).secret_key == Secret("k")


def test_a_key_file_others_can_read_is_refused(tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "secret_key"
    path.write_text("abc\n")
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_settings(env={"ABVOC_DATA_DIR": str(tmp_path)})


def test_production_without_a_key_refuses_to_start(tmp_path) -> None:  # noqa: ANN001
    env = {"ABVOC_DATA_DIR": str(tmp_path), "ABVOC_ENV": "production"}
    with pytest.raises(ConfigError, match="ABVOC_SECRET_KEY"):
        ensure_secret_key(load_settings(env=env))
    assert not (tmp_path / "secret_key").exists()
    # A key file left in the data folder does not stand in for the operator's key.
    ensure_secret_key(load_settings(env={"ABVOC_DATA_DIR": str(tmp_path)}))
    with pytest.raises(ConfigError, match="ABVOC_SECRET_KEY"):
        ensure_secret_key(load_settings(env=env))
    key = "k" * 32
    ready = ensure_secret_key(load_settings(env={**env, "ABVOC_SECRET_KEY": key}))
    assert ready.secret_key == Secret(key) and ready.production


@pytest.mark.parametrize("url", ["kafka://u:hunter2@broker", "rabbit://u:hunter2@h:1"])
def test_bus_url_errors_mask_passwords(url: str) -> None:
    with pytest.raises(ConfigError, match="ABVOC_BUS_URL") as info:
        load_settings(env={"ABVOC_BUS_URL": url})
    assert "hunter2" not in info.value.message


def test_a_topic_prefix_kafka_cannot_name_is_refused_naming_the_setting() -> None:
    """Refused at start, naming ABVOC_TOPIC_PREFIX: Kafka's own refusal reached the user as
    "ABVOC_BUS_URL is unreachable"."""
    assert load_settings(env={"ABVOC_TOPIC_PREFIX": " team-a.v2_x "}).topic_prefix == "team-a.v2_x"
    for bad in ("bad prefix", "a/b", "é", "x" * 201):
        with pytest.raises(ConfigError, match="ABVOC_TOPIC_PREFIX .* must be 1 to 200 ASCII"):
            load_settings(env={"ABVOC_TOPIC_PREFIX": bad})


@pytest.mark.parametrize(("text", "kind"), [
    ("metrics_token = 987654321123", "a number"),
    ('database_url = ["postgresql://bob:hunter2@127.0.0.1:5432/db"]', "a list"),
    ('bus_url = {url = "kafka://hunter2@127.0.0.1:9092"}', "a table"),
])
def test_a_config_files_value_of_another_kind_is_never_echoed(tmp_path, text: str,  # noqa: ANN001
                                                             kind: str) -> None:
    """A token or a URL given as a TOML number or list was printed whole in the error."""
    path = tmp_path / "abvoc.toml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(env={}, config_file=path)
    assert exc.value.message.endswith(f"must be a string, got {kind}")
    assert "987654321123" not in exc.value.message and "hunter2" not in exc.value.message


@pytest.mark.parametrize("url", ["sqlite:///", "sqlite://", "sqlite:///:memory:",
                                 "sqlite:///file:x?mode=memory&uri=true"])
def test_an_in_memory_sqlite_store_is_refused(url: str) -> None:
    """`db upgrade` said it migrated a store that vanished with its connection; every later
    command then asked for `db upgrade` again (an unset shell variable gives 'sqlite:///')."""
    with pytest.raises(ConfigError, match=r"names no SQLite file \(an in-memory store keeps "
                                          r"nothing\)"):
        load_settings(env={"ABVOC_DATABASE_URL": url})


@pytest.mark.parametrize("url", ["sqlite:////tmp/abvoc.db?mode=ro",
                                 "sqlite:///data/abvoc.db?timeout=5&foo=bar"])
def test_query_arguments_on_a_sqlite_url_are_refused(url: str) -> None:
    """The driver ignored them, warning on two lines: `?mode=ro` left `db upgrade` writing to
    the store its operator meant to open read-only."""
    with pytest.raises(ConfigError, match=r"has query arguments \((mode|foo, timeout)\) that "
                                          r"abvoc's SQLite store does not take: remove them"):
        load_settings(env={"ABVOC_DATABASE_URL": url})


@pytest.mark.parametrize("variable", ["ABVOC_RETENTION_DAYS", "ABVOC_BUS_PARTITIONS",
                                      "ABVOC_REPORT_TO_DATE_HOURS", "ABVOC_RATE_LIMIT"])
@pytest.mark.parametrize("raw", ["\u0663", "\uff13", "1_0"])  # Arabic-Indic 3, fullwidth 3
def test_numbers_are_plain_ascii_digits(variable: str, raw: str) -> None:
    """int() and float() read other scripts' digits and '1_0': ABVOC_RETENTION_DAYS=١٠ pruned
    after ten days where every other abvoc number written so is refused."""
    with pytest.raises(ConfigError, match=variable):
        load_settings({variable: raw})
    assert load_settings({variable: " 3 "}) is not None  # a value's blanks stay forgiven
