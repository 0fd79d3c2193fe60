"""What every Kafka client of the transport shares: its settings, and what librdkafka reports.

librdkafka reports broker trouble to callbacks and logs it from its own threads, several times
a second while a broker is down: the clients keep the latest report of each kind for the error
they raise, and let one log line per client and kind through a minute.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import KafkaError

log = logging.getLogger("core.bus.kafka")


class _LastError:
    """librdkafka reports broker trouble (refused connections, all brokers down) to a callback
    rather than raising; the latest report of each kind is kept so that a BusUnavailable can say
    why. Kinds, not just the last report: after each failed connect librdkafka also reports
    "1/1 brokers are down", which alone does not say what failed."""

    KEPT = 3

    def __init__(self) -> None:
        self._latest: dict[int, str] = {}  # by error code, the most recent last

    def __call__(self, error: KafkaError) -> None:
        text = error.str()
        self._latest.pop(error.code(), None)
        self._latest[error.code()] = text
        if len(self._latest) > self.KEPT:
            del self._latest[next(iter(self._latest))]
        log.debug("Kafka client: %s", text)

    @property
    def text(self) -> str:
        """The latest report of each kind, the most recent first."""
        if not self._latest:
            return "no error reported by the client"
        return "; ".join(reversed(self._latest.values()))


class _Repeats(logging.Filter):
    """Lets one librdkafka log line per client, facility and level through every `every_s`
    seconds. While a broker is down each client logs a failed connect several times a second;
    one line says it, and the next one let through counts those held back."""

    def __init__(self, every_s: float = 60.0) -> None:
        super().__init__()
        self.every_s = every_s
        self._last: dict[tuple[Any, ...], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        key = (record.levelno, *args[:2])  # librdkafka's lines: (facility, client, text)
        now = time.monotonic()
        last, held = self._last.get(key, (-self.every_s, 0))
        if now - last < self.every_s:
            self._last[key] = (last, held + 1)
            return False
        if len(self._last) > 1000:  # clients come and go (one per producer started afresh)
            self._last = {k: v for k, v in self._last.items() if now - v[0] < self.every_s}
        self._last[key] = (now, 0)
        if held:
            record.msg = f"{record.msg} ({held} more like it in the last {now - last:.0f} s)"
        return True


_LIBRDKAFKA = logging.getLogger("core.bus.kafka.librdkafka")
_LIBRDKAFKA.addFilter(_Repeats())


def _config(brokers: list[str], errors: _LastError,
            settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """A client's librdkafka settings: what every client shares, then `settings`."""
    return {
        "bootstrap.servers": ",".join(brokers),
        "reconnect.backoff.max.ms": 1000,
        "error_cb": errors,
        "logger": _LIBRDKAFKA,
        **(settings or {}),
    }
