"""Serving the app: uvicorn on a socket bound here (so a taken port is one clear line),
inside a loop that naqd owns, with uvicorn's own signal handling off (the child boot or
`naqd dashboard` decide when to stop). Both ways of running share `serve_http`."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import signal
import socket
import time
from collections.abc import Generator
from typing import Any

from loguru import logger

from naqd.dashboard.runtime import Console
from naqd.exitcodes import EXIT_CONFIG, EXIT_OK, EXIT_UNAVAILABLE


def split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def bind(listen: str, patience: float = 0.0) -> socket.socket:
    """OSError when the address stays taken for `patience` seconds, or is not ours."""
    host, port = split_listen(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    deadline = time.monotonic() + patience
    while True:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            break
        except OSError as exc:
            sock.close()
            if exc.errno != errno.EADDRINUSE or time.monotonic() >= deadline:
                raise
            time.sleep(0.1)
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def serve_http(console: Console, sock: socket.socket, stop: asyncio.Event) -> int:
    """Serve until `stop` is set; returns an exit code."""
    import uvicorn

    from naqd.dashboard.app import create_app

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Generator[None, None, None]:
            yield  # the owner of the loop handles signals

    cfg = uvicorn.Config(
        create_app(console),
        log_config=None,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=3,
        server_header=False,
        proxy_headers=False,  # the client address is the socket's; see dashboard.proxy
    )
    server = Server(cfg)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    stopping = asyncio.create_task(stop.wait())
    logger.info("dashboard on {}", url_of(sock))
    await asyncio.wait([serving, stopping], return_when=asyncio.FIRST_COMPLETED)
    console.broker.shutdown()  # open event streams end, so uvicorn stops at once
    server.should_exit = True
    stopping.cancel()
    try:
        await serving
    except (SystemExit, Exception) as exc:
        logger.error("dashboard server failed: {!r}", exc)
        return EXIT_UNAVAILABLE
    return EXIT_OK


def run_standalone(config: Any, listen: str) -> int:
    """`naqd dashboard`: serve at once (a banner until NATS answers), connect in the
    background and reconnect forever, stop on SIGINT/SIGTERM."""
    from naqd.child.boot import loop_factory

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(_standalone(config, listen))


async def _standalone(config: Any, listen: str) -> int:
    from naqd.client.errors import NatsAuthError
    from naqd.transport.connection import connect_daemon

    dash = config.dashboard
    try:
        console = Console(config, dash)
        sock = bind(listen)
    except ValueError as exc:
        logger.error("{}", exc)
        return EXIT_CONFIG
    except OSError as exc:
        logger.error("dashboard cannot listen on {}: {}", listen, exc)
        return EXIT_UNAVAILABLE
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    refused: list[str] = []

    async def connect() -> None:
        try:
            nc = await connect_daemon(
                list(config.nats.urls), role="dashboard", conn="control", nats_config=config.nats
            )
        except NatsAuthError as exc:  # credentials or TLS: no retry will fix it
            refused.append(str(exc))
            stop.set()
            return
        await console.attach(nc)

    connecting = loop.create_task(connect())
    code = await serve_http(console, sock, stop)
    connecting.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await connecting
    if refused:
        logger.error("{}", refused[0])
        code = EXIT_CONFIG
    await console.stop()
    if console.nc is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(console.nc.close(), 5)
    sock.close()
    return code
