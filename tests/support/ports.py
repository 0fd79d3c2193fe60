"""Free loopback ports, picked at run time.

A port the OS hands out for bind(0) comes from the ephemeral range, which every outgoing
connection also draws its source port from, and which the other pytest process (scripts/test runs
two) draws from as well: between picking a port and the server binding it, either may take it.
So ports are picked below the ephemeral range, from a band of their own for each pytest-xdist
process, never the same one twice in a process, and only if they bind right now.
"""

import os
import random
import re
import socket
import time

LOW, HIGH = 20000, 32768  # below Linux's default ephemeral range (32768-60999)
BANDS = 8
_given: set[int] = set()
_rng = random.Random()  # its own: a test that seeds `random` must not repeat our picks


def _band() -> range:
    worker = re.fullmatch(r"gw(\d+)", os.environ.get("PYTEST_XDIST_WORKER", ""))
    index = int(worker.group(1)) % BANDS if worker else 0
    width = (HIGH - LOW) // BANDS
    return range(LOW + index * width, LOW + (index + 1) * width)


def _binds(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    band = _band()
    if len(_given) >= len(band) // 2:  # a long session: ports handed out long ago are reused
        _given.clear()
    for _ in range(200):
        port = _rng.choice(band)
        if port not in _given and _binds(port):
            _given.add(port)
            return port
    with socket.socket() as s:  # a crowded band: the OS's choice
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout_s: float, proc=None) -> None:  # noqa: ANN001
    """Wait until something accepts on 127.0.0.1:port, or raise with the reason."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before port {port} opened")
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout_s}s")
