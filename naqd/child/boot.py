"""One boot for every child process the supervisor spawns (worker and scheduler), as
gunicorn's workers share `Worker.init_process`: logging, SIGINT ignored, a uvloop loop,
SIGTERM (drain; a second one hurries), the parent watch, the health beat, a connection
raced against a stop, the resource check, then the role's own `serve`, then the beat's
stop and the connection's close. Exit codes come from naqd/exitcodes.py."""

from __future__ import annotations

import asyncio
import signal
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import NoReturn

from loguru import logger
from nats.aio.client import Client as NATS

from naqd.client.errors import NatsAuthError
from naqd.config import Config
from naqd.exitcodes import EXIT_CONFIG, EXIT_OK
from naqd.integrations import daemon as integrations
from naqd.logs import setup_logging
from naqd.observe.heartbeat import Heartbeat
from naqd.observe.metrics import count_repair
from naqd.orphan import watch_parent
from naqd.protocol.resources import ensure_or_refuse
from naqd.transport.connection import connect_daemon


class Child(ABC):
    """A role's part of a child process; `main(child)` does the rest."""

    role: str  # "worker" or "scheduler": logs, heartbeats
    conn = "data"  # the connection's name (naqd/transport/connection.py)
    trusted_subjects = False

    def __init__(self, config: Config) -> None:
        self.config = config
        self.stop = asyncio.Event()  # drain and exit
        self.hurry = asyncio.Event()  # a second SIGTERM: stop waiting for running work

    # -- hooks --------------------------------------------------------------------------

    def prepare(self) -> int | None:
        """Checks before the loop starts that need no NATS; an exit code stops the boot."""
        return None

    @abstractmethod
    def heartbeat(self) -> Heartbeat: ...

    @abstractmethod
    def connection_role(self) -> str: ...

    async def ensure(self, nc: NATS) -> bool:
        """Create or check the streams and buckets this role needs; False is fatal."""
        return await ensure_or_refuse(nc.jetstream(), self.config, on_repair=count_repair)

    async def on_reconnect(self) -> None:
        return None

    @abstractmethod
    async def serve(self, nc: NATS, beat: Heartbeat) -> int:
        """Serve until `self.stop` is set (or the role decides to end), then let go of
        what the role holds; returns the exit code."""

    async def close(self, nc: NATS) -> None:
        try:
            # Every ack and nak is written by now: flush proves the server has them.
            await nc.flush(timeout=5)
        except Exception as exc:
            logger.warning("flushing NATS connection: {}", exc)
        try:
            await asyncio.wait_for(nc.close(), 5.0)  # never hang the exit
        except Exception as exc:
            logger.warning("closing NATS connection: {}", exc)

    def exit(self, code: int) -> NoReturn:
        sys.exit(code)

    # -- shared -------------------------------------------------------------------------

    def on_term(self) -> None:
        if self.stop.is_set():
            logger.warning("second stop signal: finishing now")
            self.hurry.set()
        else:
            logger.info("stop requested: draining")
            self.stop.set()


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        return None
    return uvloop.new_event_loop


def main(child: Child, queue: str = "") -> NoReturn:
    """Entry point of a spawned child: never returns."""
    setup_logging(child.config.logging, role=child.role, queue=queue)
    # Ctrl-C reaches the whole process group; the supervisor decides, children obey SIGTERM.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    code = child.prepare()
    if code is not None:
        sys.exit(code)
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        code = runner.run(boot(child))
    integrations.shutdown()  # spans and Sentry events still buffered go out now
    child.exit(code)


async def boot(child: Child) -> int:
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, child.on_term)
    watch_parent(loop, child.stop)
    beat = child.heartbeat()
    beat.start()
    config = child.config
    connecting = loop.create_task(
        connect_daemon(
            list(config.nats.urls),
            role=child.connection_role(),
            conn=child.conn,
            nats_config=config.nats,
            on_reconnect=child.on_reconnect,
            trusted_subjects=child.trusted_subjects,
        )
    )
    stopping = loop.create_task(child.stop.wait())
    await asyncio.wait([connecting, stopping], return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not connecting.done():
        # Stopped while NATS was unreachable: nothing is held, nothing to hand back.
        connecting.cancel()
        await asyncio.gather(connecting, stopping, return_exceptions=True)
        logger.info("{} stopped before it could reach NATS", child.role)
        await beat.stop()
        return EXIT_OK
    await asyncio.gather(stopping, return_exceptions=True)
    try:
        nc = connecting.result()
    except NatsAuthError as exc:
        logger.error("{}", exc)
        return EXIT_CONFIG
    if not await child.ensure(nc):
        await nc.close()
        return EXIT_CONFIG
    code = await child.serve(nc, beat)
    await beat.stop()
    await child.close(nc)
    return code
