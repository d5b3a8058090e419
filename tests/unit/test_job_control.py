"""Pure parts of cancel and progress: records, JobStatus, the job context's checks."""

from __future__ import annotations

import asyncio

import pytest

import naqd
from naqd.client.control import JobStatus
from naqd.protocol.envelope import Envelope, ResultRecord, decode_result, encode_result
from naqd.worker.context import JobContext


def test_progress_and_cancelled_status_round_trip() -> None:
    rec = ResultRecord(id="j", status="cancelled", progress=0.5, progress_message="half")
    back = decode_result(encode_result(rec))
    assert (back.status, back.done, back.progress, back.progress_message) == (
        "cancelled", True, 0.5, "half",
    )  # fmt: skip
    assert b"progress" not in encode_result(ResultRecord(id="j", status="running"))


def test_job_status_is_a_string_with_progress() -> None:
    s = JobStatus.of(ResultRecord(id="j", status="running", progress=0.4, progress_message="x"))
    assert s == "running" and str(s) == "running" and (s.progress, s.message) == (0.4, "x")
    assert JobStatus.of(None) == "queued" and JobStatus.of(None).progress is None


def test_current_job_outside_a_job_raises() -> None:
    with pytest.raises(RuntimeError, match="outside"):
        naqd.current_job()


def test_job_context_checks_progress_and_cancel() -> None:
    async def go() -> None:
        env = Envelope(id="j", task="m:f", queue="q")
        ctx = JobContext(env, 1, asyncio.get_running_loop(), None, ResultRecord("j", "running"))
        for bad in (-0.1, 1.5, True, "half"):
            with pytest.raises((ValueError, TypeError)):
                ctx.progress(bad)  # type: ignore[arg-type]
        ctx.progress(0.3, "a")
        assert ctx.with_progress(ResultRecord("j", "running")).progress == 0.3
        ctx.raise_if_cancelled()
        ctx.request_cancel()
        assert ctx.cancelled
        with pytest.raises(naqd.JobCancelled):
            ctx.raise_if_cancelled()

    asyncio.run(go())
