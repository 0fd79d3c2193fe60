"""Where events travel, as ``ABVOC_BUS_URL`` says: the embedded log or Kafka brokers."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from core.errors import ConfigError
from core.masking import mask_url
from core.text import text_problem

EMBEDDED_BUS = "embedded://"


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
                f"{variable}={mask_url(raw)!r} is malformed: use 'embedded://' or "
                "'kafka://host:port[,host:port]'"
            )
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ConfigError(f"{variable}={mask_url(raw)!r} has a path, query or fragment, "
                              "which abvoc would not use (it takes no Kafka client settings "
                              "there, TLS included): give only 'kafka://host:port[,host:port]'")
        if "@" in parts.netloc:
            raise ConfigError(f"{variable}={mask_url(raw)!r} carries credentials: abvoc "
                              "connects to Kafka brokers without them; give only "
                              "'kafka://host:port[,host:port]'")
        if problem := text_problem(text, controls=True):  # the Kafka client fails on it later
            raise ConfigError(f"{variable}={mask_url(raw)!r} {problem}: give only "
                              "'kafka://host:port[,host:port]'")
        brokers = []
        for hostport in parts.netloc.split(","):
            host, sep, port = hostport.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ConfigError(
                    f"{variable}={mask_url(raw)!r} is malformed: broker "
                    f"{mask_url(hostport)!r} must be host:port"
                )
            brokers.append(f"{host}:{int(port)}")
        return cls("kafka", tuple(brokers))

    def __str__(self) -> str:
        return EMBEDDED_BUS if self.kind == "embedded" else "kafka://" + ",".join(self.brokers)
