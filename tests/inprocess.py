"""A server in this test process (``create_app`` under uvicorn, in a thread with its own event loop).

WebRTC tests need it: aioice leaves 127.0.0.1 out of its host candidates and a machine may have no other
interface, so both peers are made to offer the loopback address by patching aioice in this process
(``loopback_ice``). Chromium is told to offer loopback by its own flags (``--allow-loopback-in-peer-connection``).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aioice.ice
import pytest
import uvicorn

from media_server.app import create_app
from media_server.config import Settings
from tests.conftest import create_keys, free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class InProcessServer:
    url: str
    ws_url: str
    keys: dict[str, str]
    app: Any


@contextmanager
def loopback_ice() -> Iterator[None]:
    """aiortc peers in this process (the server's and the tests') gather 127.0.0.1 only."""
    original = aioice.ice.get_host_addresses
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]
    try:
        yield
    finally:
        aioice.ice.get_host_addresses = original


@contextmanager
def inprocess_server(
    data_dir: Path, settings: dict[str, Any], roles: tuple[str, ...] = ("admin", "manager", "rep", "ingest")
) -> Iterator[InProcessServer]:
    """Keys ``roles`` of team acme (named by role) and ``other`` (an admin of team globex)."""
    keys = create_keys(data_dir, {**{role: ("acme", role) for role in roles}, "other": ("globex", "admin")})
    port = free_port()
    # gRPC on any free port: test servers must not clash on the default 50051.
    app = create_app(Settings.model_validate({"port": port, "data_dir": data_dir, "grpc": {"port": 0}, **settings}))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", ws="websockets-sansio")
    )
    thread = threading.Thread(target=server.run, name="inprocess-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the in-process server did not start")
        time.sleep(0.1)
    try:
        yield InProcessServer(f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}", keys, app)
    finally:
        server.should_exit = True
        thread.join(30)


def require_chromium() -> str:
    """Debian's chromium: `make test` installs it; under CI a missing peer fails the run."""
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed (apt-get install chromium)")
        pytest.skip("needs Debian's chromium (apt-get install chromium)")
    return CHROMIUM


# Flags for headless Chromium on this machine: no background connections (the network is closed), and
# WebRTC that offers the loopback address as it is (no mDNS names).
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required",
]
