"""JetStream publishes whose PubAcks all come back on one wildcard inbox.

`js.publish` is a full request per write: a NUID plus os.urandom token, a response
future with its own `wait_for` timer, then `json.loads` and a dataclass for the PubAck.
A worker writes one result record per job, so that machinery was a large share of a
short job's cost (docs/performance.md). Here a write is one PUB with a counter token as
its reply, a bare future, and a byte check of the PubAck; one sweeper task times out
writes whose PubAck never came (a reconnect, a stream leader change), and the caller
retries them (`store.reliable_publish`). Also the client's enqueues (`submit` for
enqueue_many) and the scheduler's waves of fires (`submit` + `wait`).

With a `Batching`, writes to one stream that are submitted in the same turn of the event
loop (an enqueue_many, concurrent enqueues, a scheduler wave) go out as one atomic batch
(nats-server >= 2.12, a stream with allow_atomic): the server commits it with one
fsync where it would make one per message under `sync_interval: always`
(docs/performance.md#durability). The commit's PubAck settles every write of the batch.
A batch the server refuses is sent again write by write, so each write gets its own
answer (a duplicate Nats-Msg-Id refuses a whole batch); a stream that refuses atomic
batches altogether gets single writes from then on.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import APIError, NoStreamResponseError

SWEEP_EVERY = 0.25  # seconds between checks for PubAcks that are overdue
MAX_BATCH = 256  # writes per atomic batch (nats-server allows 1000)
MAX_OPEN_BATCHES = 8  # per stream, awaiting their commit (nats-server allows 50)
BATCH_REFUSED = 10174  # "atomic publish is disabled": the stream lacks allow_atomic


@dataclass(frozen=True)
class Batching:
    """How writes may share atomic batches; the names come from the caller (they live
    in naqd/protocol/names.py): `stream_of(subject)` is the stream a write lands in, or
    None for a write that is never batched; `headers(batch_id, seq, commit)` are the
    headers that make a message part of a batch."""

    stream_of: Callable[[str], str | None]
    headers: Callable[[str, int, bool], dict[str, str]]


@dataclass
class _Write:
    subject: str
    payload: bytes
    headers: dict[str, str] | None
    fut: asyncio.Future[None]
    timeout: float


@dataclass
class _Batch:
    """Writes that one PubAck answers: one write, or an atomic batch's commit."""

    futs: list[asyncio.Future[None]]
    writes: list[_Write] = field(default_factory=list)  # to resend one by one if refused
    stream: str = ""
    done: Callable[[], None] | None = None  # frees the stream's batch slot


class StreamWriter:
    def __init__(self, nc: NATS, batching: Batching | None = None, min_batch: int = 2) -> None:
        """`batching`: which writes may share an atomic batch (None: never batch).
        `min_batch`: fewer writes of one turn than this go as single writes. An atomic
        batch costs the server a few fsyncs of bookkeeping and is committed one after
        another per stream, so a small one is slower than pipelined writes unless every
        write is fsynced (docs/performance.md#durability)."""
        self.nc = nc
        self._batching = batching
        self._min_batch = max(2, min_batch)
        self._prefix = ""
        self._seq = 0
        self._pending: dict[str, tuple[_Batch, float]] = {}
        self._queued: dict[str, list[_Write]] = {}  # stream -> writes of this loop turn
        self._flusher: asyncio.Task[None] | None = None
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._single: set[str] = set()  # streams that refused atomic batches
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
        if self._flusher is not None:
            self._flusher.cancel()
        pending, self._pending = self._pending, {}
        queued, self._queued = self._queued, {}
        self._deadlines = []
        futs = [f for batch, _ in pending.values() for f in batch.futs]
        futs += [w.fut for writes in queued.values() for w in writes]
        for fut in futs:
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
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        stream = self._batching.stream_of(subject) if self._batching is not None else None
        if stream is None or stream in self._single:
            await self._send(_Batch([fut]), subject, payload, headers, timeout)
            return fut
        self._queued.setdefault(stream, []).append(_Write(subject, payload, headers, fut, timeout))
        if self._flusher is None or self._flusher.done():
            # Runs after the current turn: every write submitted in it is queued by then.
            self._flusher = asyncio.get_running_loop().create_task(self._flush())
        return fut

    async def _send(
        self,
        batch: _Batch,
        subject: str,
        payload: bytes,
        headers: dict[str, str] | None,
        timeout: float,
    ) -> None:
        """One PUB whose PubAck settles `batch`."""
        self._seq += 1
        token = str(self._seq)
        deadline = time.monotonic() + timeout
        self._pending[token] = (batch, deadline)
        heapq.heappush(self._deadlines, (deadline, self._seq))
        try:
            await self.nc.publish(subject, payload, reply=self._prefix + token, headers=headers)
        except BaseException:
            del self._pending[token]
            self._release(batch)
            raise

    async def _flush(self) -> None:
        while self._queued:
            stream, writes = self._queued.popitem()
            for start in range(0, len(writes), MAX_BATCH):
                chunk = writes[start : start + MAX_BATCH]
                try:
                    await self._send_chunk(stream, chunk)
                except Exception as exc:  # not sent (connection closed): the callers retry
                    for w in chunk:
                        if not w.fut.done():
                            w.fut.set_exception(exc)

    async def _send_chunk(self, stream: str, chunk: list[_Write]) -> None:
        if len(chunk) < self._min_batch or stream in self._single:
            for w in chunk:
                await self._send(_Batch([w.fut]), w.subject, w.payload, w.headers, w.timeout)
            return
        slots = self._slots.setdefault(stream, asyncio.Semaphore(MAX_OPEN_BATCHES))
        await slots.acquire()
        batch = _Batch([w.fut for w in chunk], chunk, stream, slots.release)
        batch_id = uuid.uuid4().hex
        mark = self._batching.headers if self._batching is not None else None
        assert mark is not None
        for i, w in enumerate(chunk[:-1], 1):
            hdrs = {**(w.headers or {}), **mark(batch_id, i, False)}
            await self.nc.publish(w.subject, w.payload, headers=hdrs)
        w = chunk[-1]
        hdrs = {**(w.headers or {}), **mark(batch_id, len(chunk), True)}
        await self._send(batch, w.subject, w.payload, hdrs, max(x.timeout for x in chunk))

    def _release(self, batch: _Batch) -> None:
        if batch.done is not None:
            batch.done()
            batch.done = None

    def _refused(self, batch: _Batch, exc: BaseException) -> None:
        """A batch the server did not store: each write again on its own, so each gets
        its own answer (a duplicate is then stored-already, not an error)."""
        if isinstance(exc, APIError) and exc.err_code == BATCH_REFUSED:
            self._single.add(batch.stream)
        for w in batch.writes:
            if w.fut.done():
                continue
            asyncio.get_running_loop().create_task(self._resend(w))

    async def _resend(self, w: _Write) -> None:
        try:
            await self._send(_Batch([w.fut]), w.subject, w.payload, w.headers, w.timeout)
        except Exception as exc:
            if not w.fut.done():
                w.fut.set_exception(exc)

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
        if entry is None:
            return  # answered after its timeout: the write was retried already
        batch = entry[0]
        self._release(batch)
        error = pub_ack_error(msg)
        if error is not None and batch.writes:
            self._refused(batch, error)
            return
        for fut in batch.futs:
            if fut.done():
                continue
            if error is None:
                fut.set_result(None)
            else:
                fut.set_exception(error)

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
                if entry is None:
                    continue
                self._release(entry[0])
                for fut in entry[0].futs:
                    if not fut.done():
                        fut.set_exception(NatsTimeoutError())


def pub_ack_error(msg: Msg) -> BaseException | None:
    """What a PubAck (or a status message in its place) says went wrong, or None."""
    data = msg.data
    if not data:
        # A status message: 503 means no stream (or no leader) took the write.
        status = (msg.headers or {}).get("Status", "")
        return NoStreamResponseError() if status == "503" else APIError(description=status)
    if b'"error"' not in data:
        return None
    try:
        APIError.from_error(json.loads(data)["error"])  # raises the typed error
    except APIError as exc:
        return exc
    except Exception as exc:  # a PubAck we cannot read: treat as not stored
        return APIError(description=f"unreadable PubAck: {exc}")
    return APIError(description="error in PubAck")


def failed(fut: asyncio.Future[None]) -> BaseException | None:
    """The error of a done write (None when it was stored; a duplicate is stored)."""
    if fut.cancelled():
        return asyncio.CancelledError()
    return fut.exception()
