"""The client's NATS connection (docs/client.md#connecting): connect within a deadline, or
in the background while NATS is still down (calls fail fast with ConnectError until it is
up); reconnect forever afterwards; log an outage once, then once every 30 s with a count,
not once per reconnect attempt; close without ever raising."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import nats.errors
from nats.aio.client import Client as NATS

from naqd.client.errors import ConnectError
from naqd.errors import NatsAuthError
from naqd.transport import natsauth
from naqd.transport.cancelling import cancel_until_done
from naqd.transport.throttle import ErrorThrottle

log = logging.getLogger("naqd.client")

RETRY_MAX = 5.0  # seconds between background connect attempts, at most
CLOSE_WITHIN = 5.0  # seconds a close may take (a drain against a dead server waits)


class Link:
    """One connection, owned by one Client."""

    def __init__(
        self,
        servers: list[str],
        options: dict[str, Any],
        *,
        tls_required: bool,
        connect_deadline: float,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        self.servers = servers
        self.options = options
        self.tls_required = tls_required
        self.connect_deadline = connect_deadline
        self.on_error = on_error  # sees every async error, e.g. permission violations
        self.nc: NATS | None = None
        self.throttle = ErrorThrottle()
        self.last_error = ""
        self.fatal: NatsAuthError | None = None  # a background connect that cannot succeed
        self.closed = False
        self.on_connect: Callable[[NATS], None] | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def where(self) -> str:
        return ", ".join(natsauth.safe_url(s) for s in self.servers)

    def _opts(self) -> dict[str, Any]:
        opts: dict[str, Any] = dict(
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            ping_interval=10,
            connect_timeout=2,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
        )
        opts.update(self.options)
        return opts

    async def _connect_once(self, timeout: float) -> NATS:
        """One connect; a rejected identity raises NatsAuthError at once, a server that
        does not answer ConnectError."""
        try:
            return await asyncio.wait_for(
                natsauth.connect(
                    self.servers, self._opts(), tls_required=self.tls_required,
                    error_cb=self._on_error,
                ),
                timeout,
            )  # fmt: skip
        except NatsAuthError:
            raise
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            self.last_error = f"{type(exc).__name__}: {exc}".rstrip(": ")
            raise ConnectError(
                f"cannot connect to NATS at {self.where} within {timeout}s ({self.last_error})"
            ) from exc

    async def open(self, background: bool) -> None:
        """Connect now (ConnectError after the deadline), or start connecting in the
        background and return at once."""
        if not background:
            self._connected(await self._connect_once(self.connect_deadline))
            return
        self._task = asyncio.get_running_loop().create_task(self._keep_trying())

    async def _keep_trying(self) -> None:
        delay = 0.1
        while not self.closed:
            try:
                nc = await self._connect_once(max(2.0, self.connect_deadline))
            except NatsAuthError as exc:
                self.fatal = exc
                log.error("naqd client: %s", exc)
                return
            except ConnectError:
                line = self.throttle.line(
                    f"cannot connect to NATS at {self.where}: {self.last_error}"
                )
                if line is not None:
                    log.warning("naqd client: %s; retrying in the background", line)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            if self.closed:  # closed while this connect was under way
                await _close_quietly(nc)
                return
            left_out = self.throttle.reset()
            more = f" ({left_out} repeated error(s) not logged)" if left_out else ""
            log.info("naqd client: connected to NATS at %s%s", self.where, more)
            self._connected(nc)
            return

    def _connected(self, nc: NATS) -> None:
        self.nc = nc
        if self.on_connect is not None:
            self.on_connect(nc)

    def require(self) -> NATS:
        """The connection, or ConnectError saying why there is none."""
        if self.nc is not None:
            return self.nc
        if self.fatal is not None:
            raise self.fatal
        if self.closed:
            raise ConnectError("the client is closed")
        if self._task is not None:
            why = f" (last error: {self.last_error})" if self.last_error else ""
            raise ConnectError(f"not connected to NATS at {self.where} yet{why}")
        raise ConnectError(
            "the client is not connected: use `async with Client(...)` or `await client.connect()`"
        )

    async def _on_error(self, exc: Exception) -> None:
        if self.on_error is not None:
            self.on_error(exc)
        line = self.throttle.line(f"{type(exc).__name__}: {exc}")
        if line is not None:
            log.warning("naqd client: nats: %s", line)

    async def _on_disconnected(self) -> None:
        if self.nc is not None and not self.nc.is_closed and not self.closed:
            log.warning("naqd client: disconnected from NATS; reconnecting")

    async def _on_reconnected(self) -> None:
        left_out = self.throttle.reset()
        more = f" ({left_out} repeated error(s) not logged)" if left_out else ""
        log.info("naqd client: reconnected to NATS%s", more)

    async def close(self, before: Callable[[], Awaitable[None]] | None = None) -> None:
        """Never raises; logs one line at most when something went wrong. `before` runs
        first (the client's own cleanup), under the same rule."""
        self.closed = True
        problems: list[str] = []
        task, self._task = self._task, None
        if task is not None:  # bounded: a swallowed cancel must not hang close()
            await cancel_until_done([task])
        if before is not None:
            try:
                await before()
            except Exception as exc:
                problems.append(f"{type(exc).__name__}: {exc}")
        nc, self.nc = self.nc, None
        if nc is not None:
            problems += await _drain_or_close(nc)
        if problems:
            log.warning("naqd client: closed uncleanly (%s)", "; ".join(problems))


async def _drain_or_close(nc: NATS) -> list[str]:
    """Drain (what is buffered goes out), or close when draining cannot work (a dead
    server, mid-reconnect): a publish was only ever confirmed by its PubAck."""
    if nc.is_closed:
        return []
    if nc.is_connected:
        try:
            await _within(nc.drain(), CLOSE_WITHIN)
            return []
        except Exception as exc:  # drain timeout, reconnecting meanwhile, ...
            problem = f"drain: {type(exc).__name__}: {exc}".rstrip(": ")
    else:
        problem = ""
    try:
        await _within(nc.close(), CLOSE_WITHIN)
    except Exception as exc:
        return [p for p in (problem, f"close: {type(exc).__name__}: {exc}") if p]
    return [problem] if problem else []


async def _within(work: Awaitable[Any], seconds: float) -> None:
    """`work`, or TimeoutError after `seconds`. Unlike wait_for, it does not then wait for
    the work to finish cancelling: nats-py's drain took 10 s to give up against a hung
    server, so a close that should end in 1 s took 11."""
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        task.cancel()
        task.add_done_callback(_retrieve)
        raise TimeoutError(f"not done within {seconds}s")
    task.result()


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: no "never retrieved" log for work nobody awaits


async def _close_quietly(nc: NATS) -> None:
    with contextlib.suppress(Exception):
        await _within(nc.close(), CLOSE_WITHIN)
