"""Reading a job's outcome (docs/client.md): its stored record, its status, waiting for
it through the `naqd.done.<id>` notice, and its return value or error."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from nats.js.errors import KeyNotFoundError

from naqd.client.control import JobStatus
from naqd.client.errors import JobCancelled, JobFailed, ResultTimeout
from naqd.protocol.envelope import ResultRecord, decode_result
from naqd.protocol.names import RESULTS_BUCKET, done_subject

if TYPE_CHECKING:
    from nats.aio.client import Client as NATS
    from nats.js import JetStreamContext

    from naqd.protocol.signing import Keyring


class ResultsMixin:
    """Mixed into Client; needs `_js`, `nc`, `serializer`, `keyring` and `_bucket`."""

    _js: JetStreamContext
    _bucket: Any
    serializer: str
    keyring: Keyring | None

    @property
    def nc(self) -> NATS:  # Client's property
        raise NotImplementedError

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
        return decode_result(
            entry.value, allow_pickle=self.serializer == "pickle", keyring=self.keyring
        )

    async def _has_ended(self, job_id: str) -> bool:
        """Whether the job's final record is stored (a unique lock it holds is stale)."""
        try:
            rec = await self.record(job_id)
        except Exception:  # unreadable here (e.g. signed with a key we lack): assume not
            return False
        return rec is not None and rec.status in ("succeeded", "failed", "cancelled")

    async def status(self, job_id: str) -> JobStatus:
        """queued | running | succeeded | failed | cancelled, with the job's reported
        `.progress` and `.message`. Like Celery's PENDING, 'queued' also covers an id
        naqd has never seen: no record exists before a worker takes a job."""
        return JobStatus.of(await self.record(job_id))

    async def wait(self, job_id: str, timeout: float | None = None) -> ResultRecord:
        """Wait for a final record: subscribe to the done notice first, then look it up.
        Workers send the notice only after the record is stored, so one of the two sees it."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[ResultRecord] = loop.create_future()
        allow_pickle = self.serializer == "pickle"

        async def on_msg(msg: Any) -> None:
            try:
                rec = decode_result(msg.data, allow_pickle=allow_pickle, keyring=self.keyring)
            except Exception:
                return
            if rec.done and not done.done():
                done.set_result(rec)

        sub = await self.nc.subscribe(done_subject(job_id), cb=on_msg)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                rec = await self.record(job_id)
                if rec is not None and rec.done:
                    return rec
                # Re-check every 2 s in case a notice was lost to a reconnect.
                wait = 2.0 if deadline is None else min(2.0, deadline - time.monotonic())
                if wait <= 0:
                    raise ResultTimeout(job_id, timeout)
                try:
                    return await asyncio.wait_for(asyncio.shield(done), wait)
                except TimeoutError:
                    continue
        finally:
            await sub.unsubscribe()

    async def result(self, job_id: str, timeout: float | None = None) -> Any:
        """The job's return value; raises JobFailed, JobCancelled or ResultTimeout
        (a TimeoutError too)."""
        rec = await self.wait(job_id, timeout)
        if rec.status == "cancelled":
            raise JobCancelled(job_id)
        if rec.status == "failed":
            err = rec.error
            raise JobFailed(
                job_id,
                err.type if err else "Error",
                err.message if err else "",
                err.traceback if err else "",
            )
        return rec.result
