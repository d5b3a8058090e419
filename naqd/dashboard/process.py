"""The web console as a child of `naqd run` (a `dashboard:` section in naq.yaml), booted
like the scheduler by naqd/child/boot.py: its own NATS connection, heartbeat, restart by
the supervisor and restart on a reload that changes what it shows."""

from __future__ import annotations

import socket

from loguru import logger
from nats.aio.client import Client as NATS

from naqd.child import boot
from naqd.config import Config
from naqd.exitcodes import EXIT_CONFIG, EXIT_UNAVAILABLE
from naqd.observe.heartbeat import Heartbeat


def main(config: Config, queue: str, index: int) -> None:
    """Entry point of the spawned console process (`queue`/`index` are unused)."""
    boot.main(DashboardProcess(config))


class DashboardProcess(boot.Child):
    role = "dashboard"
    conn = "control"

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.sock: socket.socket | None = None

    def prepare(self) -> int | None:
        """Before NATS: the extra is installed, the console may listen there, the port is
        free. Each failure is one line and exit 78 (69 for a taken port)."""
        from naqd.dashboard.auth import listen_refusal

        dash = self.config.dashboard
        assert dash is not None
        try:
            import jinja2  # noqa: F401
            import starlette  # noqa: F401
            import uvicorn  # noqa: F401
        except ModuleNotFoundError as exc:
            logger.error(
                "the dashboard needs naqd's dashboard extra ({} is not installed): "
                "pip install 'naqd[dashboard]'",
                exc.name,
            )
            return EXIT_CONFIG
        refusal = listen_refusal(dash, dash.listen)
        if refusal:
            logger.error("{}", refusal)
            return EXIT_CONFIG
        from naqd.dashboard.server import bind

        try:
            # A reload starts the replacement while the old console lets go of the port.
            self.sock = bind(dash.listen, patience=10.0)
        except OSError as exc:
            logger.error("dashboard cannot listen on {}: {}", dash.listen, exc)
            return EXIT_UNAVAILABLE
        return None

    def heartbeat(self) -> Heartbeat:
        return Heartbeat(self.config, "dashboard")

    def connection_role(self) -> str:
        return "dashboard"

    def on_term(self) -> None:
        self.stop.set()  # nothing to drain: pages reconnect to the next console

    async def ensure(self, nc: NATS) -> bool:
        return True  # the console reads what exists; the daemon's children create it

    async def serve(self, nc: NATS, beat: Heartbeat) -> int:
        from naqd.dashboard.runtime import Console
        from naqd.dashboard.server import serve_http

        dash = self.config.dashboard
        assert dash is not None and self.sock is not None
        try:
            console = Console(self.config, dash)
        except ValueError as exc:
            logger.error("{}", exc)
            return EXIT_CONFIG
        await console.attach(nc)
        beat.attach(nc, extra=lambda: {"listen": dash.listen})
        code = await serve_http(console, self.sock, self.stop)
        await console.stop()
        self.sock.close()
        return code
