"""The async producer API: enqueue jobs, read their status and results.

Importable without uvloop, prometheus or any daemon code, so applications pay only for
nats-py.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import nats
from nats.aio.client import Client as NATS
from nats.errors import ConnectionClosedError, ConnectionReconnectingError, NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import KeyNotFoundError, NoStreamResponseError, ServiceUnavailableError

from naqd.client.errors import EnqueueError, JobFailed
from naqd.protocol.envelope import (
    Encoding,
    Envelope,
    ResultRecord,
    decode_result,
    encode_job,
    validate_job_id,
)
from naqd.protocol.names import (
    HDR_ENCODING,
    HDR_MSG_ID,
    RESULTS_BUCKET,
    job_subject,
    result_subject,
)
from naqd.protocol.options import check_backoff, exception_names

_RETRYABLE = (
    NatsTimeoutError,
    asyncio.TimeoutError,
    NoStreamResponseError,
    NoRespondersError,
    ServiceUnavailableError,
)


def task_name(task: str | Callable[..., Any]) -> str:
    """'module:qualname' for a callable; strings pass through."""
    if isinstance(task, str):
        return task
    module, qualname = getattr(task, "__module__", None), getattr(task, "__qualname__", None)
    if not module or not qualname or "<" in qualname:
        raise TypeError(f"{task!r} is not an importable module-level function")
    return f"{module}:{qualname}"


def new_job_id() -> str:
    return uuid.uuid4().hex


class Job:
    """A handle to an enqueued job."""

    def __init__(self, client: Client, job_id: str) -> None:
        self.client = client
        self.id = job_id

    async def result(self, timeout: float | None = None) -> Any:
        return await self.client.result(self.id, timeout=timeout)

    async def status(self) -> str:
        return await self.client.status(self.id)

    def __repr__(self) -> str:
        return f"Job({self.id!r})"


class Client:
    """Async client. Use as `async with Client(url) as client:` or call connect()/close()."""

    def __init__(
        self,
        servers: str | list[str] = "nats://127.0.0.1:4222",
        *,
        serializer: Encoding = "json",
        default_queue: str = "default",
        publish_deadline: float = 10.0,
        nc: NATS | None = None,
    ) -> None:
        self.servers = [servers] if isinstance(servers, str) else list(servers)
        self.serializer: Encoding = serializer
        self.default_queue = default_queue
        self.publish_deadline = publish_deadline
        self._nc = nc
        self._own_nc = nc is None

    async def connect(self) -> Client:
        if self._nc is None:
            self._nc = await nats.connect(
                servers=self.servers,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                ping_interval=10,
                connect_timeout=2,
            )
        self._js = self._nc.jetstream()
        self._bucket: Any = None
        return self

    async def close(self) -> None:
        if self._nc is not None and self._own_nc:
            try:
                await self._nc.drain()
            except (ConnectionReconnectingError, ConnectionClosedError):
                # Mid-reconnect there is nothing to drain: whatever is buffered is lost
                # either way, and a publish was only ever confirmed by its PubAck.
                await self._nc.close()
        self._nc = None

    async def __aenter__(self) -> Client:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def nc(self) -> NATS:
        if self._nc is None:
            raise RuntimeError("client is not connected: use `async with Client(...)`")
        return self._nc

    # -- enqueue ------------------------------------------------------------------------

    def build(
        self,
        task: str | Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        queue: str | None = None,
        job_id: str | None = None,
        retries: int | None = None,
        timeout: float | None = None,
        result_ttl: float | None = None,
        backoff: Any = None,
        retry_on: Any = None,
        dont_retry_on: Any = None,
    ) -> tuple[str, bytes, dict[str, str]]:
        """Subject, payload and headers of a job: pure, shared by every enqueue path."""
        env = Envelope(
            id=validate_job_id(job_id) if job_id is not None else new_job_id(),
            task=task_name(task),
            queue=queue or self.default_queue,
            args=tuple(args),
            kwargs=kwargs,
            enqueued_at=time.time(),
            retries=retries,
            timeout=timeout,
            result_ttl=result_ttl,
            backoff=check_backoff(backoff),
            retry_on=exception_names(retry_on),
            dont_retry_on=exception_names(dont_retry_on),
        )
        headers = {HDR_MSG_ID: env.id}
        if self.serializer != "json":
            headers[HDR_ENCODING] = self.serializer
        return job_subject(env.queue), encode_job(env, self.serializer), headers

    async def enqueue(
        self,
        task: str | Callable[..., Any],
        *args: Any,
        queue: str | None = None,
        job_id: str | None = None,
        retries: int | None = None,
        timeout: float | None = None,
        result_ttl: float | None = None,
        backoff: Any = None,
        retry_on: Any = None,
        dont_retry_on: Any = None,
        task_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Job:
        """Store a job; returns once JetStream has it. Keyword names that are options of
        enqueue itself reach the task through `task_kwargs={...}`.

        Retry options override the queue's: `retries`, `backoff` (a list of delays in
        seconds, or `{"strategy": "exponential"|"linear"|"fixed", "base": s, "max": s,
        "jitter": 0-1}`), `retry_on` / `dont_retry_on` (exception classes or names)."""
        if task_kwargs:
            kwargs = {**kwargs, **task_kwargs}
        subject, payload, headers = self.build(
            task,
            args,
            kwargs,
            queue=queue,
            job_id=job_id,
            retries=retries,
            timeout=timeout,
            result_ttl=result_ttl,
            backoff=backoff,
            retry_on=retry_on,
            dont_retry_on=dont_retry_on,
        )
        await self._publish(subject, payload, headers)
        return Job(self, headers[HDR_MSG_ID])

    async def _publish(self, subject: str, payload: bytes, headers: dict[str, str]) -> None:
        """Retry with the same Nats-Msg-Id: the stream's dedupe makes a retry safe."""
        deadline = time.monotonic() + self.publish_deadline
        delay = 0.05
        while True:
            remaining = deadline - time.monotonic()
            try:
                await self._js.publish(
                    subject, payload, headers=headers, timeout=max(0.1, min(2.0, remaining))
                )
                return
            except _RETRYABLE as exc:
                if time.monotonic() + delay >= deadline:
                    raise EnqueueError(
                        f"could not enqueue to {subject} within {self.publish_deadline}s "
                        f"({type(exc).__name__}); is naqd's stream created and NATS up?"
                    ) from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    # -- results ------------------------------------------------------------------------

    async def _kv(self) -> Any:
        if self._bucket is None:
            self._bucket = await self._js.key_value(RESULTS_BUCKET)
        return self._bucket

    async def record(self, job_id: str) -> ResultRecord | None:
        """The stored result record of a job, or None when no worker has taken it yet."""
        try:
            entry = await (await self._kv()).get(job_id)
        except KeyNotFoundError:
            return None
        if not entry.value:
            return None
        return decode_result(entry.value, allow_pickle=self.serializer == "pickle")

    async def status(self, job_id: str) -> str:
        """queued | running | succeeded | failed. Like Celery's PENDING, 'queued' also
        covers an id naqd has never seen: no record exists before a worker takes a job."""
        rec = await self.record(job_id)
        return rec.status if rec else "queued"

    async def wait(self, job_id: str, timeout: float | None = None) -> ResultRecord:
        """Wait for a final record: subscribe to the key's subject first, then look it up."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[ResultRecord] = loop.create_future()
        allow_pickle = self.serializer == "pickle"

        async def on_msg(msg: Any) -> None:
            try:
                rec = decode_result(msg.data, allow_pickle=allow_pickle)
            except Exception:
                return
            if rec.done and not done.done():
                done.set_result(rec)

        sub = await self.nc.subscribe(result_subject(job_id), cb=on_msg)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                rec = await self.record(job_id)
                if rec is not None and rec.done:
                    return rec
                # The re-check every 2 s covers a result stored between SUB and lookup.
                wait = 2.0 if deadline is None else min(2.0, deadline - time.monotonic())
                if wait <= 0:
                    raise TimeoutError(f"job {job_id} did not finish within {timeout}s")
                try:
                    return await asyncio.wait_for(asyncio.shield(done), wait)
                except TimeoutError:
                    continue
        finally:
            await sub.unsubscribe()

    async def result(self, job_id: str, timeout: float | None = None) -> Any:
        """The job's return value; raises JobFailed or TimeoutError."""
        rec = await self.wait(job_id, timeout)
        if rec.status == "failed":
            err = rec.error
            raise JobFailed(
                job_id,
                err.type if err else "Error",
                err.message if err else "",
                err.traceback if err else "",
            )
        return rec.result
