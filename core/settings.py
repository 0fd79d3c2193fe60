"""Typed settings, read once from the environment (and an optional TOML file) and then frozen.

Settings are passed through constructors; nothing else in abvoc reads the environment.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from core.bus_url import EMBEDDED_BUS, BusURL
from core.errors import ConfigError
from core.folders import folder_setting
from core.masking import Secret, mask_url
from core.query import plain_decimal, whole_number
from core.secret_key_file import MAKE_A_KEY, check_key_strength, read_key_file
from core.text import quoted_names, text_problem

SECRET_KEY_FILE = "secret_key"
PRODUCTION = "production"
DEVELOPMENT = "development"
ENVIRONMENTS = (DEVELOPMENT, PRODUCTION)  # any other ABVOC_ENV (`prod`) is refused: a typo
# must not turn the production safeguards off


@dataclass(frozen=True)
class Settings:
    """Everything abvoc needs to start; frozen so a long-running worker cannot drift."""

    data_dir: Path
    database_url: str
    bus: BusURL
    secret_key: Secret | None = field(default=None, repr=False)
    topic_prefix: str = "abvoc"
    bus_partitions: int = 3
    model_store: Path | None = None
    log_level: str = "INFO"
    default_candidate: str | None = None
    environment: str = "development"
    retention_days: float = 7.0
    # Served inputs are kept this long for annotators (0: not kept); an input a relabel item
    # holds is kept until the item is gone.
    input_retention_hours: float = 72.0
    # `abvoc up` rewrites the current week's report so far once it is this old (0: never; the
    # command and the Reports page's button still write it on demand).
    report_to_date_hours: float = 24.0
    # Bearer token a Prometheus scraper shows for /metrics; without it, production asks for an
    # admin API key there (per-candidate series name candidates predict keys must not learn).
    metrics_token: Secret | None = field(default=None, repr=False)
    # Requests a second each API key may send to one serving process (0: no limit).
    rate_limit: float = 0.0
    # Parts (heartbeat components: relay, worker) this deployment runs: /readyz is not ready
    # while one of them has no live instance, even before its first heartbeat.
    expect_parts: tuple[str, ...] = ()
    # On SQLite, answers' rows are appended to a spool file and committed within 50 ms
    # (core.store.spool); off: each answer waits for its own commit.
    request_spool: bool = True

    @property
    def production(self) -> bool:
        return self.environment == PRODUCTION

    @property
    def secret_key_file(self) -> Path:
        return self.data_dir / SECRET_KEY_FILE

    @property
    def models_dir(self) -> Path:
        return self.model_store or self.data_dir / "models"

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    def _key_source(self) -> str:
        """Where a process started with these settings gets its key, when none is set."""
        if self.production:
            return "(unset: production needs ABVOC_SECRET_KEY)"
        made = "kept in" if self.secret_key_file.is_file() else "made at the first start in"
        return f"(unset: {made} {self.secret_key_file})"

    def describe(self) -> dict[str, Any]:
        """The effective configuration with secrets masked, as `abvoc config` prints it: under
        the config file's keys (`bus_url`, `env`, not the fields' older `bus`, `environment`),
        so what it prints is what a config file takes and what the README and errors name."""
        out = asdict(self)
        out["data_dir"] = str(self.data_dir)
        out["model_store"] = str(self.models_dir)
        out["database_url"] = mask_url(self.database_url)
        out["bus"] = str(self.bus)
        out["secret_key"] = self.secret_key.masked() if self.secret_key else self._key_source()
        # Unset is null (as default_candidate's), not a string a script could take for a token.
        out["metrics_token"] = self.metrics_token.masked() if self.metrics_token else None
        out["expect_parts"] = list(self.expect_parts)  # a list, as a config file gives it
        return {_file_key(_VARIABLE[key]): value for key, value in out.items()}


ENV_KEYS = {  # variable -> setting
    "ABVOC_DATA_DIR": "data_dir", "ABVOC_DATABASE_URL": "database_url", "ABVOC_BUS_URL": "bus",
    "ABVOC_SECRET_KEY": "secret_key", "ABVOC_TOPIC_PREFIX": "topic_prefix",
    "ABVOC_BUS_PARTITIONS": "bus_partitions", "ABVOC_MODEL_STORE": "model_store",
    "ABVOC_LOG_LEVEL": "log_level", "ABVOC_DEFAULT_CANDIDATE": "default_candidate",
    "ABVOC_ENV": "environment", "ABVOC_RETENTION_DAYS": "retention_days",
    "ABVOC_INPUT_RETENTION_HOURS": "input_retention_hours",
    "ABVOC_REPORT_TO_DATE_HOURS": "report_to_date_hours",
    "ABVOC_METRICS_TOKEN": "metrics_token", "ABVOC_RATE_LIMIT": "rate_limit",
    "ABVOC_EXPECT_PARTS": "expect_parts", "ABVOC_REQUEST_SPOOL": "request_spool",
}


def _validate_database_url(url: str) -> str:
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        # The parser's own message quotes the whole URL, password included: leave it out.
        raise ConfigError(
            f"ABVOC_DATABASE_URL={mask_url(url)!r} is malformed; use e.g. "
            "'sqlite:///path/abvoc.db' or 'postgresql+psycopg://user:pass@host:5432/db'"
        ) from None
    backend = parsed.get_backend_name()
    if backend != "sqlite" and url.partition("://")[2].split("/", 1)[0].count("@") > 1:
        raise ConfigError(f"ABVOC_DATABASE_URL={mask_url(url)!r} has a raw '@' in its user or "
                          "password: percent-encode it as %40")
    if backend not in ("sqlite", "postgresql"):
        raise ConfigError(f"ABVOC_DATABASE_URL uses {backend!r}; abvoc supports sqlite and "
                          "postgresql")
    if backend == "sqlite" and ((parsed.database or ":memory:") == ":memory:"
                                or parsed.query.get("mode") == "memory"):
        # Every connection would get a store of its own, gone when it closes: `db upgrade`
        # said it migrated, and every later command asked for `db upgrade` again.
        raise ConfigError(f"ABVOC_DATABASE_URL={mask_url(url)!r} names no SQLite file (an "
                          "in-memory store keeps nothing); give a path such as "
                          "'sqlite:///path/abvoc.db', or leave it unset for the data folder's")
    if backend == "sqlite" and parsed.query:
        # The driver ignores them with a two-line warning: `?mode=ro` left `db upgrade` and
        # every process writing to a store its operator meant to open read-only.
        raise ConfigError(f"ABVOC_DATABASE_URL={mask_url(url)!r} has query arguments "
                          f"({', '.join(sorted(parsed.query))}) that abvoc's SQLite store "
                          "does not take: remove them ('sqlite:///path/abvoc.db')")
    if parsed.drivername not in ("sqlite", "sqlite+pysqlite", "postgresql", "postgresql+psycopg"):
        raise ConfigError(f"ABVOC_DATABASE_URL uses the driver {parsed.drivername!r}; abvoc "
                          "ships psycopg 3: write 'postgresql://' or 'postgresql+psycopg://'")
    if backend == "postgresql" and parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return url


def _file_key(variable: str) -> str:
    """A config-file key, by the README's rule: the name lower-case, without ABVOC_."""
    return variable.removeprefix("ABVOC_").lower()


MAX_RETENTION_DAYS = 36500
MAX_INPUT_RETENTION_HOURS = 876000
MAX_REPORT_TO_DATE_HOURS = 168  # a week: a longer wait would never rewrite it
MAX_RATE_LIMIT = 1_000_000
MAX_BUS_PARTITIONS = 1024
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_VARIABLE = {key: var for var, key in ENV_KEYS.items()}
# Config-file key -> setting: the README's names, and the settings' own (`bus`, `environment`),
# which the file took before and still takes.
FILE_KEYS = {**{key: key for key in ENV_KEYS.values()},
             **{_file_key(var): key for var, key in ENV_KEYS.items()}}


def _setting(key: str) -> str:
    """How a message names a setting: its variable and its config-file key."""
    return f"{_VARIABLE[key]} ({_file_key(_VARIABLE[key])} in the config file)"


def _text(values: Mapping[str, Any], key: str, *, empty: bool = True) -> str | None:
    """A string setting (None when unset); a TOML number or list is refused, not str()-ed."""
    value = values.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        # The value is not echoed: a secret (a token, a URL with its password) may be it.
        raise ConfigError(f"{_setting(key)} must be {'a' if empty else 'a non-empty'} string, "
                          f"got {_TOML_KINDS.get(type(value), 'another kind of value')}")
    if not empty and not value.strip():
        raise ConfigError(f"{_setting(key)} must be a non-empty string, got a blank one")
    return value


_TOML_KINDS = {bool: "a boolean", int: "a number", float: "a number", list: "a list",
               dict: "a table"}


def _number(values: Mapping[str, Any], key: str, default: float, low: float, high: float,
            what: str, *, whole: bool = False) -> Any:
    """A number setting within [low, high]: booleans, fractions where a whole number is due,
    and text that is not a number are refused with the setting's name and range."""
    value = values.get(key, default)
    if isinstance(value, str):  # ASCII digits only: int()/float() read '1_0' and '٣' too
        text = value.strip()
        value = whole_number(text, low, high) if whole else plain_decimal(text)
    ok = isinstance(value, int | float) and not isinstance(value, bool) \
        and (isinstance(value, int) or not whole) and low <= value <= high
    if not ok:
        raise ConfigError(f"{_setting(key)} must be {what}, got {values.get(key)!r}")
    return value


TOPIC_PREFIX = re.compile(r"[A-Za-z0-9._-]{1,200}")
PART_NAME = re.compile(r"[a-z][a-z0-9:._-]{0,49}")
PARTS = ("relay", "worker")
"""The parts that write heartbeats under these names (core.outbox, evaluation.worker); any
other stream consumer beats as ``consumer:<group>`` (core.stream)."""
CONSUMER_PART = "consumer:"


def _parts(values: Mapping[str, Any]) -> tuple[str, ...]:
    """Part names, comma-separated (or a TOML list), as their heartbeat rows name them."""
    raw = values.get("expect_parts")
    if raw is None:
        return ()
    names = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"{_setting('expect_parts')} must be part names separated by commas "
                          f"(e.g. relay,worker), got {raw!r}")
    parts = tuple(dict.fromkeys(n.strip() for n in names if n.strip()))
    if bad := [n for n in parts if not PART_NAME.fullmatch(n)]:
        raise ConfigError(f"{_setting('expect_parts')} names {bad[0][:60]!r}, which is not a "
                          "part name (lower-case letters, digits and :._- , e.g. relay,worker)")
    # Only a part that writes heartbeats can ever be up: a typo would keep /readyz down for good.
    if bad := [n for n in parts if n not in PARTS and not n.startswith(CONSUMER_PART)]:
        raise ConfigError(f"{_setting('expect_parts')} names {bad[0][:60]!r}, which no part of "
                          f"abvoc is called: the parts are {', '.join(PARTS)} (and "
                          f"{CONSUMER_PART}<group> for a consumer group of your own)")
    return parts


_SWITCH = {"1": True, "true": True, "on": True, "yes": True,
           "0": False, "false": False, "off": False, "no": False}


def _switch(values: Mapping[str, Any], key: str, default: bool) -> bool:
    """An on/off setting: a TOML boolean, or on/off, true/false, yes/no, 1/0."""
    raw = values.get(key)
    if raw is None:
        return default
    value = raw if isinstance(raw, bool) else _SWITCH.get(str(raw).strip().lower())
    if value is None:
        raise ConfigError(f"{_setting(key)} must be on or off (or true/false, 1/0), "
                          f"got {str(raw)[:60]!r}")
    return value


def _folder(values: Mapping[str, Any], key: str) -> Path | None:
    """A folder setting (core.folders): None when unset."""
    text = _text(values, key)
    return folder_setting(text, _setting(key)) if text else None


def load_settings(
    env: Mapping[str, str] | None = None, config_file: str | Path | None = None
) -> Settings:
    """Settings from a TOML file (optional, `ABVOC_CONFIG`) overlaid by environment variables;
    every value is checked here, so a bad one fails now with its name, not later in a child."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    path = config_file or env.get("ABVOC_CONFIG")
    if path:
        try:
            with open(path, "rb") as fh:
                file_values = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{_config(path)} cannot be read: {exc}") from exc
        values.update(_file_settings(path, file_values))
    for var, key in ENV_KEYS.items():
        if env.get(var):
            values[key] = env[var]

    data_dir = _folder(values, "data_dir") or Path.cwd() / "data"
    database_url = _text(values, "database_url") or f"sqlite:///{data_dir / 'abvoc.db'}"
    partitions = _number(values, "bus_partitions", 3, 1, MAX_BUS_PARTITIONS,
                         f"a whole number from 1 to {MAX_BUS_PARTITIONS}", whole=True)
    retention_days = float(_number(values, "retention_days", 7, 1e-9, MAX_RETENTION_DAYS,
                                   f"a positive number of days, at most {MAX_RETENTION_DAYS}"))
    input_hours = float(_number(
        values, "input_retention_hours", 72, 0, MAX_INPUT_RETENTION_HOURS,
        f"a number of hours from 0 to {MAX_INPUT_RETENTION_HOURS} "
        "(0: served inputs are not kept for annotators)"))
    to_date_hours = float(_number(
        values, "report_to_date_hours", 24, 0, MAX_REPORT_TO_DATE_HOURS,
        f"a number of hours from 0 to {MAX_REPORT_TO_DATE_HOURS} (0: the week so far is "
        "written only on demand)"))
    rate_limit = float(_number(values, "rate_limit", 0, 0, MAX_RATE_LIMIT,
                               f"requests a second per API key, from 0 (no limit) to "
                               f"{MAX_RATE_LIMIT}"))
    model_store = _folder(values, "model_store")
    environment = (_text(values, "environment", empty=False) or DEVELOPMENT).strip().lower()
    if environment not in ENVIRONMENTS:
        raise ConfigError(f"{_setting('environment')} must be one of {', '.join(ENVIRONMENTS)}, "
                          f"got {values.get('environment')!r}")
    log_level = (_text(values, "log_level", empty=False) or "INFO").strip().upper()
    if log_level not in LOG_LEVELS:
        raise ConfigError(f"{_setting('log_level')} must be one of {', '.join(LOG_LEVELS)}, "
                          f"got {values.get('log_level')!r}")
    topic_prefix = _text(values, "topic_prefix", empty=False)
    if topic_prefix is not None and not TOPIC_PREFIX.fullmatch(topic_prefix.strip()):
        # Said here, naming the setting: Kafka's refusal came as "the bus is unreachable".
        raise ConfigError(f"{_setting('topic_prefix')} must be 1 to 200 ASCII letters, digits, "
                          f"'.', '_' or '-' (Kafka's topic names), got {topic_prefix[:60]!r}")
    key = values.get("secret_key")
    if key is not None and not isinstance(key, str):
        raise ConfigError("ABVOC_SECRET_KEY must be a string")
    if key and text_problem(key) is not None:  # not echoed: it is the secret
        raise ConfigError("ABVOC_SECRET_KEY must be UTF-8 text without NUL characters (make one "
                          f"with `{MAKE_A_KEY}`)")
    if key and environment == PRODUCTION:
        check_key_strength(key)
    metrics_token = _text(values, "metrics_token")
    if metrics_token and metrics_token != metrics_token.strip():  # a secret file's newline
        raise ConfigError(f"{_setting('metrics_token')} starts or ends with blanks or a line "
                          "break, which no scraper sends: remove them")
    return Settings(
        data_dir=data_dir,
        database_url=_validate_database_url(database_url),
        bus=BusURL.parse(_text(values, "bus") or EMBEDDED_BUS),
        secret_key=Secret(key) if key else (
            None if environment == PRODUCTION else read_key_file(data_dir / SECRET_KEY_FILE)),
        topic_prefix="abvoc" if topic_prefix is None else topic_prefix.strip(),
        bus_partitions=int(partitions),
        model_store=model_store,
        log_level=log_level,
        default_candidate=_text(values, "default_candidate") or None,
        environment=environment,
        retention_days=retention_days,
        input_retention_hours=input_hours,
        report_to_date_hours=to_date_hours,
        metrics_token=Secret(metrics_token) if metrics_token else None,
        rate_limit=rate_limit,
        expect_parts=_parts(values),
        request_spool=_switch(values, "request_spool", True),
    )


def _config(path: str | Path) -> str:
    """How a message names the config file: given by --config or by ABVOC_CONFIG."""
    return f"the config file {str(path)!r} (--config or ABVOC_CONFIG)"


def _file_settings(path: str | Path, file_values: Mapping[str, Any]) -> dict[str, Any]:
    """A config file's values by setting; an unknown key, or a setting under both its names,
    is refused, naming the keys the file takes."""
    if unknown := set(file_values) - set(FILE_KEYS):
        raise ConfigError(f"{_config(path)} has unknown keys: {quoted_names(sorted(unknown))}; "
                          f"the keys are: {', '.join(_file_key(var) for var in ENV_KEYS)}")
    if len(values := {FILE_KEYS[k]: v for k, v in file_values.items()}) < len(file_values):
        raise ConfigError(f"{_config(path)} gives a setting under both its names (e.g. "
                          "bus_url and bus): keep one")
    return values


def ensure_secret_key(settings: Settings) -> Settings:
    """Settings with a secret key, for a process that signs or verifies receipts.

    ABVOC_SECRET_KEY wins. In production (ABVOC_ENV=production) it is required, so that every
    process and machine signs with the same operator-chosen key (a key file is ignored there).
    Elsewhere the key kept in the data folder (`<data_dir>/secret_key`, mode 0600) is used, and
    made on the first start: a random key no one else knows, so receipts cannot be forged,
    stable across restarts.
    """
    if settings.secret_key:
        return settings
    if settings.production:
        raise ConfigError("ABVOC_ENV=production needs ABVOC_SECRET_KEY: set it to a long random "
                          f"value, the same for every process (e.g. `{MAKE_A_KEY}`)")
    path = settings.secret_key_file
    if (existing := read_key_file(path)) is not None:
        return replace(settings, secret_key=existing)
    tmp = path.with_name(f".{SECRET_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot keep a secret key in {path} ({exc.strerror}): make "
                          "ABVOC_DATA_DIR writable or set ABVOC_SECRET_KEY") from None
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48) + "\n")
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)  # atomic: of two first starts, one key wins and both use it
    finally:
        tmp.unlink(missing_ok=True)
    key = read_key_file(path)
    assert key is not None
    return replace(settings, secret_key=key)
