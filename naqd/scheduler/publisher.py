"""JetStream publishes sent back to back, their PubAcks on one wildcard inbox.

The fire loop sends a wave of jobs (then their KV records) without waiting for each
PubAck: `send` returns a future, `wait` waits for a batch of them with one deadline.
Cheaper than `js.publish_async`, which draws a random token, takes a semaphore and
parses each PubAck into a dataclass; here a PubAck is a byte check. A duplicate
(`Nats-Msg-Id` seen before) is a success.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterable

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import APIError, NoStreamResponseError


class PipelinedPublisher:
    def __init__(self, nc: NATS) -> None:
        self.nc = nc
        self._prefix = ""
        self._seq = 0
        self._pending: dict[str, asyncio.Future[None]] = {}
        self._sub: Subscription | None = None

    async def send(
        self, subject: str, payload: bytes, headers: dict[str, str] | None = None
    ) -> asyncio.Future[None]:
        """Publish; the future completes with the PubAck (or its error)."""
        if self._sub is None:
            self._prefix = self.nc.new_inbox() + "."
            self._sub = await self.nc.subscribe(self._prefix + "*", cb=self._on_ack)
        self._seq += 1
        token = str(self._seq)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending[token] = fut
        try:
            await self.nc.publish(subject, payload, reply=self._prefix + token, headers=headers)
        except BaseException:
            del self._pending[token]
            raise
        return fut

    async def wait(self, futures: Iterable[asyncio.Future[None]], timeout: float) -> None:
        """Until every future is done or `timeout` passed; the ones still open then fail
        with a timeout (a PubAck arriving later is ignored)."""
        pending = [f for f in futures if not f.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        for fut in pending:
            if not fut.done():
                fut.set_exception(NatsTimeoutError())
        if len(self._pending) > 4096:  # futures failed by timeout: forget their tokens
            self._pending = {t: f for t, f in self._pending.items() if not f.done()}

    async def close(self) -> None:
        for fut in self._pending.values():
            fut.cancel()
        self._pending.clear()
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None

    async def _on_ack(self, msg: Msg) -> None:
        fut = self._pending.pop(msg.subject[len(self._prefix) :], None)
        if fut is None or fut.done():
            return  # answered after its timeout
        data = msg.data
        if not data:
            # A status message: 503 means no stream (or no leader) took the write.
            status = (msg.headers or {}).get("Status", "")
            fut.set_exception(
                NoStreamResponseError() if status == "503" else APIError(description=status)
            )
        elif b'"error"' in data:
            try:
                APIError.from_error(json.loads(data)["error"])  # raises the typed error
            except APIError as exc:
                fut.set_exception(exc)
            except Exception as exc:  # a PubAck we cannot read: treat as not stored
                fut.set_exception(APIError(description=f"unreadable PubAck: {exc}"))
        else:
            fut.set_result(None)


def failed(fut: asyncio.Future[None]) -> BaseException | None:
    """The error of a done future (None when it succeeded)."""
    if fut.cancelled():
        return asyncio.CancelledError()
    return fut.exception()
