"""JetStream publishes whose PubAcks all come back on one wildcard inbox.

`js.publish` is a full request per write: a NUID plus os.urandom token, a response
future with its own `wait_for` timer, then `json.loads` and a dataclass for the PubAck.
A worker writes one result record per job, so that machinery was a large share of a
short job's cost (docs/performance.md). Here a write is one PUB with a counter token as
its reply, a bare future, and a byte check of the PubAck; one sweeper task times out
writes whose PubAck never came (a reconnect, a stream leader change), and the caller
retries them (`store.reliable_publish`). Also the client's enqueues (`submit` for
enqueue_many) and the scheduler's waves of fires (`submit` + `wait`).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import time
from collections.abc import Iterable

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import APIError, NoStreamResponseError

SWEEP_EVERY = 0.25  # seconds between checks for PubAcks that are overdue


class StreamWriter:
    def __init__(self, nc: NATS) -> None:
        self.nc = nc
        self._prefix = ""
        self._seq = 0
        self._pending: dict[str, tuple[asyncio.Future[None], float]] = {}
        # (deadline, token) of every write, soonest first: the sweeper looks only at the
        # overdue ones (a bulk enqueue may have a million writes in flight).
        self._deadlines: list[tuple[float, int]] = []
        self._sub: Subscription | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._prefix = self.nc.new_inbox() + "."
        self._sub = await self.nc.subscribe(self._prefix + "*", cb=self._on_ack_cb)
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        pending, self._pending = self._pending, {}
        self._deadlines = []
        for fut, _ in pending.values():
            if not fut.done():
                fut.set_exception(NatsTimeoutError())
                fut.exception()  # retrieved: no "never retrieved" log for a write nobody awaits
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()

    async def publish(
        self,
        subject: str,
        payload: bytes,
        headers: dict[str, str] | None = None,
        timeout: float = 2.0,
    ) -> None:
        """Store one message; raises what `js.publish` would (timeout, no stream, API
        error) so the same retry policy applies."""
        await (await self.submit(subject, payload, headers, timeout))

    async def submit(
        self,
        subject: str,
        payload: bytes,
        headers: dict[str, str] | None = None,
        timeout: float = 2.0,
    ) -> asyncio.Future[None]:
        """Send one write without waiting for it: the future settles with its PubAck,
        its error, or a timeout. For bulk writes (enqueue_many)."""
        if self._sub is None:
            raise RuntimeError("StreamWriter.start() was not awaited")
        self._seq += 1
        token = str(self._seq)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        deadline = time.monotonic() + timeout
        self._pending[token] = (fut, deadline)
        heapq.heappush(self._deadlines, (deadline, self._seq))
        try:
            await self.nc.publish(subject, payload, reply=self._prefix + token, headers=headers)
        except BaseException:
            del self._pending[token]
            raise
        return fut

    async def wait(self, futures: Iterable[asyncio.Future[None]], timeout: float) -> None:
        """Until every future is done or `timeout` passed; the ones still open then fail
        with a timeout (a PubAck arriving later is ignored). For waves of writes."""
        pending = [f for f in futures if not f.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        for fut in pending:
            if not fut.done():
                fut.set_exception(NatsTimeoutError())

    def _on_ack(self, msg: Msg) -> None:
        entry = self._pending.pop(msg.subject[len(self._prefix) :], None)
        if entry is None or entry[0].done():
            return  # answered after its timeout: the write was retried already
        fut = entry[0]
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

    async def _on_ack_cb(self, msg: Msg) -> None:  # nats-py wants a coroutine
        self._on_ack(msg)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_EVERY)
            now = time.monotonic()
            if len(self._deadlines) > 2 * len(self._pending) + 1024:
                # Mostly answered writes: rebuild from the open ones (amortised O(1)).
                self._deadlines = [(d, int(t)) for t, (_, d) in self._pending.items()]
                heapq.heapify(self._deadlines)
            deadlines = self._deadlines
            while deadlines and deadlines[0][0] <= now:
                entry = self._pending.pop(str(heapq.heappop(deadlines)[1]), None)
                if entry is not None and not entry[0].done():
                    entry[0].set_exception(NatsTimeoutError())


def failed(fut: asyncio.Future[None]) -> BaseException | None:
    """The error of a done write (None when it was stored; a duplicate is stored)."""
    if fut.cancelled():
        return asyncio.CancelledError()
    return fut.exception()
