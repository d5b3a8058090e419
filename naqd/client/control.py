"""Cancelling jobs and reading their progress from the client (docs/job-control.md)."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from nats.js.errors import APIError, KeyNotFoundError

from naqd.protocol.envelope import ResultRecord, decode_result, encode_result, validate_job_id
from naqd.protocol.names import (
    DELAYED_SUBJECT_PREFIX,
    DEPENDENT_SUBJECT_PREFIX,
    HDR_EXPECTED_LAST_SUBJECT_SEQ,
    JOBS_STREAM,
    cancel_subject,
    done_subject,
    result_subject,
)

if TYPE_CHECKING:
    from nats.aio.client import Client as NATS
    from nats.js import JetStreamContext


class JobStatus(str):
    """A job's status ("queued", "running", "succeeded", "failed", "cancelled") that
    also carries the progress the job reported: `status.progress` (0..1 or None) and
    `status.message`. It compares and prints like the plain string."""

    progress: float | None
    message: str

    def __new__(cls, status: str, progress: float | None = None, message: str = "") -> JobStatus:
        obj = super().__new__(cls, status)
        obj.progress = progress
        obj.message = message
        return obj

    @classmethod
    def of(cls, rec: ResultRecord | None) -> JobStatus:
        if rec is None:
            return cls("queued")
        return cls(rec.status, rec.progress, rec.progress_message)


class ControlMixin:
    """Mixed into Client; needs `nc`, `_js` and `_kv()`."""

    _js: JetStreamContext

    @property
    def nc(self) -> NATS:  # Client's property
        raise NotImplementedError

    async def _kv(self) -> Any:
        raise NotImplementedError

    async def cancel(self, job_id: str) -> bool:
        """Cancel a job: a delayed, dependent or queued job never runs, a running
        coroutine job is cancelled, a running thread job is told through
        `current_job().cancelled` (cooperative). Its final status is `cancelled`.
        False when the job has already finished."""
        validate_job_id(job_id)
        held = False
        for prefix in (DELAYED_SUBJECT_PREFIX, DEPENDENT_SUBJECT_PREFIX):
            subject = f"{prefix}.*.{job_id}"
            info = await self._js.stream_info(JOBS_STREAM, subjects_filter=subject)
            if info.state.subjects:
                await self._js.purge_stream(JOBS_STREAM, subject=subject)
                held = True
        kv = await self._kv()
        try:
            entry = await kv.get(job_id)
        except KeyNotFoundError:
            entry = None
        rec = None
        if entry is not None and entry.value:
            try:
                rec = decode_result(entry.value, allow_pickle=False)
            except ValueError:  # a pickled result: the job is done
                return held
        if rec is not None and rec.done and not held:
            return False
        # The cancel record: workers skip the job when it arrives, or stop it if running.
        body = json.dumps({"at": time.time()}).encode()
        await self._js.publish(cancel_subject(job_id), body)
        if rec is None or held:
            await self._record_cancelled(job_id, entry.revision if entry is not None else 0)
        return True

    async def _record_cancelled(self, job_id: str, revision: int | None) -> None:
        """A job that is not running yet is `cancelled` at once, unless a worker wrote a
        record meanwhile (compare-and-set): then that worker stops the job and records it."""
        rec = ResultRecord(id=job_id, status="cancelled", finished_at=time.time(), worker="client")
        data = encode_result(rec)
        headers = {HDR_EXPECTED_LAST_SUBJECT_SEQ: str(revision or 0)}
        try:
            await self._js.publish(result_subject(job_id), data, headers=headers)
        except APIError:
            return
        await self.nc.publish(done_subject(job_id), data)
