"""The embedded nats-server, for a single-host setup with no NATS configured."""

from __future__ import annotations

import ctypes
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from loguru import logger

from naqd.serverbin import is_ready, nats_server_binary

__all__ = ["EmbeddedNats", "nats_server_binary", "split_listen"]


def split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host or "127.0.0.1", int(port)


class EmbeddedNats:
    """nats-server with JetStream, started before the children and stopped after them."""

    def __init__(self, listen: str, store_dir: str) -> None:
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
            if is_ready(self.host, self.port):
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


def _parent_death_hook() -> Callable[[], None] | None:
    """A preexec hook setting PR_SET_PDEATHSIG(SIGTERM) (Linux). libc is looked up here,
    in the parent: the hook itself must not import or allocate between fork and exec."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1
