"""The tests' port picker: distinct ports that bind, below the ephemeral range, in a band of
their own for each pytest process."""

from __future__ import annotations

import socket

import pytest

from tests.support import ports


def test_picks_are_distinct_bindable_and_in_this_process_band() -> None:
    picked = [ports.free_port() for _ in range(50)]
    assert len(set(picked)) == len(picked)
    band = ports._band()
    assert all(p in band for p in picked) and max(band) < ports.HIGH
    for port in picked[:5]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_each_xdist_process_has_its_own_band(monkeypatch: pytest.MonkeyPatch) -> None:
    bands = []
    for worker in ("gw0", "gw1", "gw2"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        bands.append(set(ports._band()))
    assert not (bands[0] & bands[1]) and not (bands[1] & bands[2])
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    assert ports.free_port() in bands[1]


def test_a_port_in_use_is_never_picked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports, "_band", lambda: range(ports.LOW, ports.LOW + 4))
    monkeypatch.setattr(ports, "_given", set())
    held = []
    try:
        for port in range(ports.LOW, ports.LOW + 3):
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                s.close()
                continue
            held.append(s)
        taken = {s.getsockname()[1] for s in held}
        for _ in range(4):  # the free one, then the OS's choices: never a held one
            assert ports.free_port() not in taken
    finally:
        for s in held:
            s.close()
