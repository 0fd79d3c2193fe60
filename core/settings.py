"""Typed settings, read once from the environment (and an optional TOML file) and then frozen.

Settings are passed through constructors; nothing else in abvoc reads the environment.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from core.errors import ConfigError

EMBEDDED_BUS = "embedded://"


class Secret(str):
    """A string that never prints its value (repr, str formatting in logs, `abvoc config`)."""

    def __repr__(self) -> str:
        return "Secret('****')"

    def masked(self) -> str:
        return "****" if self else ""

    def reveal(self) -> str:
        return str.__str__(self)


@dataclass(frozen=True)
class BusURL:
    """Where events travel: the embedded log in the SQL store, or a list of Kafka brokers."""

    kind: str  # "embedded" or "kafka"
    brokers: tuple[str, ...] = ()

    @classmethod
    def parse(cls, raw: str, variable: str = "ABVOC_BUS_URL") -> BusURL:
        text = raw.strip()
        if text in ("", "embedded", EMBEDDED_BUS):
            return cls("embedded")
        parts = urlsplit(text)
        if parts.scheme != "kafka" or not parts.netloc:
            raise ConfigError(
                f"{variable}={raw!r} is malformed: use 'embedded://' or "
                "'kafka://host:port[,host:port]'"
            )
        brokers = []
        for hostport in parts.netloc.split(","):
            host, sep, port = hostport.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ConfigError(
                    f"{variable}={raw!r} is malformed: broker {hostport!r} must be host:port"
                )
            brokers.append(f"{host}:{int(port)}")
        return cls("kafka", tuple(brokers))

    def __str__(self) -> str:
        return EMBEDDED_BUS if self.kind == "embedded" else "kafka://" + ",".join(self.brokers)


def mask_url(url: str) -> str:
    """The URL with any password replaced, for printing."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


@dataclass(frozen=True)
class Settings:
    """Everything abvoc needs to start; frozen so a long-running worker cannot drift."""

    data_dir: Path
    database_url: str
    bus: BusURL
    secret_key: Secret = field(repr=False)
    topic_prefix: str = "abvoc"
    bus_partitions: int = 3
    model_store: Path | None = None
    log_level: str = "INFO"
    default_candidate: str | None = None

    @property
    def models_dir(self) -> Path:
        return self.model_store or self.data_dir / "models"

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    def describe(self) -> dict[str, Any]:
        """The effective configuration with secrets masked, as `abvoc config` prints it."""
        out = asdict(self)
        out["data_dir"] = str(self.data_dir)
        out["model_store"] = str(self.models_dir)
        out["database_url"] = mask_url(self.database_url)
        out["bus"] = str(self.bus)
        out["secret_key"] = self.secret_key.masked()
        return out


ENV_KEYS = {
    "ABVOC_DATA_DIR": "data_dir",
    "ABVOC_DATABASE_URL": "database_url",
    "ABVOC_BUS_URL": "bus",
    "ABVOC_SECRET_KEY": "secret_key",
    "ABVOC_TOPIC_PREFIX": "topic_prefix",
    "ABVOC_BUS_PARTITIONS": "bus_partitions",
    "ABVOC_MODEL_STORE": "model_store",
    "ABVOC_LOG_LEVEL": "log_level",
    "ABVOC_DEFAULT_CANDIDATE": "default_candidate",
}


def _validate_database_url(url: str) -> str:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(
            f"ABVOC_DATABASE_URL={mask_url(url)!r} is malformed ({exc}); use e.g. "
            "'sqlite:///path/abvoc.db' or 'postgresql+psycopg://user:pass@host:5432/db'"
        ) from exc
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"ABVOC_DATABASE_URL uses {backend!r}; abvoc supports sqlite and postgresql"
        )
    if backend == "postgresql" and parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return url


def load_settings(
    env: Mapping[str, str] | None = None, config_file: str | Path | None = None
) -> Settings:
    """Settings from a TOML file (optional, `ABVOC_CONFIG`) overlaid by environment variables."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    path = config_file or env.get("ABVOC_CONFIG")
    if path:
        try:
            with open(path, "rb") as fh:
                file_values = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"ABVOC_CONFIG={path!r} cannot be read: {exc}") from exc
        unknown = set(file_values) - set(ENV_KEYS.values())
        if unknown:
            raise ConfigError(f"ABVOC_CONFIG={path!r} has unknown keys: {sorted(unknown)}")
        values.update(file_values)
    for var, key in ENV_KEYS.items():
        if env.get(var):
            values[key] = env[var]

    data_dir = Path(values.get("data_dir") or Path.cwd() / "data").expanduser()
    database_url = values.get("database_url") or f"sqlite:///{data_dir / 'abvoc.db'}"
    try:
        partitions = int(values.get("bus_partitions", 3))
    except ValueError as exc:
        raise ConfigError("ABVOC_BUS_PARTITIONS must be a positive integer") from exc
    if partitions < 1:
        raise ConfigError("ABVOC_BUS_PARTITIONS must be a positive integer")
    model_store = values.get("model_store")
    return Settings(
        data_dir=data_dir,
        database_url=_validate_database_url(str(database_url)),
        bus=BusURL.parse(str(values.get("bus", EMBEDDED_BUS))),
        secret_key=Secret(values.get("secret_key") or "abvoc-dev-secret-change-me"),
        topic_prefix=str(values.get("topic_prefix", "abvoc")),
        bus_partitions=partitions,
        model_store=Path(model_store).expanduser() if model_store else None,
        log_level=str(values.get("log_level", "INFO")).upper(),
        default_candidate=values.get("default_candidate") or None,
    )
