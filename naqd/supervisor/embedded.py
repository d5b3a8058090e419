"""The embedded nats-server, for a single-host setup with no NATS configured.

naqd must only ever use a server it started itself: each start gets a unique
`server_name`, and the server answering on the port must announce that name in its
INFO greeting. Anything else (the port taken by another server, our process gone) is
refused before a child connects, so naqd never creates its streams on a server it does
not own."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

from loguru import logger

from naqd.observe.durability import embedded_warning
from naqd.serverbin import nats_server_binary
from naqd.values import format_duration

# systemd's notify socket and watchdog belong to the supervisor alone (docs/systemd.md).
SUPERVISOR_ONLY_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


class NotOurServer(RuntimeError):
    """The port is answered by a server naqd did not start (or ours is gone)."""


__all__ = ["EmbeddedNats", "nats_server_binary", "split_listen"]


def split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host or "127.0.0.1", int(port)


def child_env(env: Mapping[str, str]) -> dict[str, str]:
    """The environment of a process the supervisor starts, without systemd's variables."""
    return {k: v for k, v in env.items() if k not in SUPERVISOR_ONLY_ENV}


class EmbeddedNats:
    """nats-server with JetStream, started before the children and stopped after them;
    `watch()` (called from the supervisor loop) restarts it when it dies."""

    def __init__(
        self,
        listen: str,
        store_dir: str,
        max_payload: int | None = None,
        sync: str | float = "always",
    ) -> None:
        self.max_payload = max_payload  # tasks.max_payload: the server allows more
        self.sync = sync  # nats.embedded.sync: "always" or seconds between fsyncs
        self.host, self.port = split_listen(listen)
        self.store_dir = Path(store_dir)
        self.proc: subprocess.Popen[bytes] | None = None
        self.server_name = ""
        self.restarts = 0
        self.up = False
        self.pidfd: int | None = None  # readable once the server exits: wakes the loop
        self._restart_at = 0.0
        self._failures = 0
        self._up_since = 0.0

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def _launch(self) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        # A fresh name per start: a server left over from an earlier run cannot pass for us.
        self.server_name = f"naqd-embedded-{self.port}-{uuid.uuid4().hex[:12]}"
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
            self.server_name,
        ]
        cmd += config_args(self.store_dir, self.max_payload, self.sync)
        # Own session: a Ctrl-C to the terminal must not stop NATS before the children
        # have drained; the parent-death signal stops it if the supervisor is SIGKILLed.
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_parent_death_hook(),
            env=child_env(os.environ),
        )
        self._close_pidfd()
        with contextlib.suppress(AttributeError, OSError):
            self.pidfd = os.pidfd_open(self.proc.pid)

    def start(self, timeout: float = 15.0) -> None:
        """Start the server and wait until it answers as itself; raises RuntimeError
        (NotOurServer when another server answers) so naqd exits 69 with nothing done."""
        logger.info(
            "starting embedded nats-server on {} (store {}, sync {})",
            self.url,
            self.store_dir,
            describe_sync(self.sync),
        )
        warning = embedded_warning(self.sync)
        if warning:
            logger.warning("{}", warning)
        self._launch()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self._ours():
                    self.up, self._up_since = True, time.monotonic()
                    logger.info("embedded nats-server ready (pid {})", self.proc.pid)  # type: ignore[union-attr]
                    return
            except RuntimeError:
                self.stop()
                raise
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"embedded nats-server not ready within {timeout}s")

    def _ours(self) -> bool:
        """True once our process is alive and the server on the port announces our name;
        False while nothing answers yet; raises when either check fails for good."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            # Exited, most likely on a taken port: name the server that holds it, if
            # one answers there (which of the two a busy machine shows first varies).
            info = read_info(self.host, self.port)
            check = judge_info(info, self.server_name) if info is not None else ""
            if check:
                raise NotOurServer(self._taken(check))
            raise RuntimeError(
                f"embedded nats-server exited with code {self.proc.returncode} "
                f"(is {self.host}:{self.port} already in use?)"
            )
        info = read_info(self.host, self.port)
        if info is None:
            return False
        check = judge_info(info, self.server_name)
        if check:
            # Our process may still be starting; if it can never bind, another server
            # owns the port: recheck that ours is alive before blaming the other one.
            if self.proc.poll() is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(0.5)
            raise NotOurServer(self._taken(check))
        return True

    def _taken(self, check: str) -> str:
        return (
            f"{self.host}:{self.port} is answered by another server ({check}); "
            "naqd uses only the nats-server it starts: free the port or set "
            "nats.embedded.listen"
        )

    # -- while running: called from the supervisor loop ---------------------------------

    def watch(self, now: float) -> None:
        """Notice a dead server and start it again (same store: JetStream recovers its
        streams); back off like a child when it keeps dying. Raises NotOurServer when
        another server took the port meanwhile: the children must not stay on it."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            self._close_pidfd()  # a dead process's pidfd stays readable: stop waking on it
        if self.up:
            if self.proc.poll() is None:
                if now - self._up_since >= 60.0:
                    self._failures = 0  # served a healthy while: not part of a crash loop
                return
            self.up = False
            self.restarts += 1
            self._failures += 1
            delay = min(30.0, 0.5 * 2 ** (self._failures - 1)) if self._failures > 1 else 0.0
            self._restart_at = now + delay
            logger.error(
                "embedded nats-server (pid {}) died with {}; restart #{} in {:.1f}s",
                self.proc.pid,
                _describe(self.proc.returncode),
                self.restarts,
                delay,
            )
        if self.proc.poll() is not None:
            if now < self._restart_at:
                return
            logger.info("restarting embedded nats-server on {}", self.url)
            self._launch()
            self._restart_at = now + 15.0  # not ready by then: kill and start again
            return
        try:
            ready = self._ours()
        except NotOurServer:
            self.stop()
            raise
        except RuntimeError:
            return  # exited meanwhile: handled on the next tick
        if ready:
            self.up, self._up_since = True, now
            logger.warning("embedded nats-server back (pid {})", self.proc.pid)
        elif now >= self._restart_at:
            logger.error("embedded nats-server not ready within 15s: killing it")
            self.proc.kill()
            self.proc.wait()

    def stop(self, timeout: float = 10.0) -> None:
        self._close_pidfd()
        self.up = False
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        logger.info("embedded nats-server stopped")

    def _close_pidfd(self) -> None:
        if self.pidfd is not None:
            with contextlib.suppress(OSError):
                os.close(self.pidfd)
            self.pidfd = None


def judge_info(info: dict[str, object], server_name: str) -> str:
    """Why an INFO greeting is not from our server, or "" when it is."""
    name = info.get("server_name")
    if name != server_name:
        return f"server_name {name!r}, id {info.get('server_id')!r}, expected {server_name!r}"
    if not info.get("jetstream"):
        return f"server {name!r} has no JetStream"
    return ""


def read_info(host: str, port: int, timeout: float = 0.5) -> dict[str, object] | None:
    """The INFO greeting of whatever listens on host:port, or None when nothing answers."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            data = b""
            while b"\r\n" not in data and len(data) < 65536:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    line = data.split(b"\r\n", 1)[0]
    if not line.startswith(b"INFO "):
        return None
    try:
        info = json.loads(line[5:])
    except ValueError:
        return None
    return info if isinstance(info, dict) else None


def _describe(code: int | None) -> str:
    if code is not None and code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"exit code {code}"


# nats-server refuses a max_payload over 64 MiB (and warns above 8 MiB).
_SERVER_PAYLOAD_CAP = 64 * 1024 * 1024


def server_max_payload(tasks_max_payload: int) -> int:
    """Twice naqd's own limit (at least 64 KiB more, for headers), so a job that is too
    large reaches a worker, which refuses it with a record and a dead letter the
    producer can read, instead of the server refusing the publish."""
    return min(_SERVER_PAYLOAD_CAP, max(2 * tasks_max_payload, tasks_max_payload + 65536))


def sync_interval(sync: str | float) -> str:
    """nats.embedded.sync as nats-server's `jetstream.sync_interval` value."""
    if sync == "always":
        return "always"
    return f"{max(1, round(float(sync) * 1000))}ms"


def describe_sync(sync: str | float) -> str:
    return "always" if sync == "always" else format_duration(float(sync))


def config_text(tasks_max_payload: int | None, sync: str | float) -> str:
    """What the flags cannot say: the fsync policy, and max_payload."""
    lines = [f"jetstream {{ sync_interval: {sync_interval(sync)} }}"]
    if tasks_max_payload is not None:
        lines.append(f"max_payload: {server_max_payload(tasks_max_payload)}")
    return "\n".join(lines) + "\n"


def config_args(store_dir: Path, tasks_max_payload: int | None, sync: str | float) -> list[str]:
    """nats-server takes these only from a config file: a short one next to the store
    (the command-line flags still set everything else, the store directory included)."""
    conf = store_dir / "naqd-embedded.conf"
    conf.write_text(config_text(tasks_max_payload, sync))
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
